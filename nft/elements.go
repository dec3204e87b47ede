package nft

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"go4.org/netipx"
)

// intervalElements encodes prefixes (one family, normalised) the way the
// kernel's interval sets expect them: a start element at the first address
// and an IntervalEnd element at the first address after the prefix. A prefix
// that reaches the top of the address space has no address after it; like
// nft, we then omit the end element and the interval stays open to the top.
func intervalElements(ps []netip.Prefix) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, 2*len(ps))
	for _, p := range ps {
		out = append(out, prefixElements(p)...)
	}
	return out
}

func prefixElements(p netip.Prefix) []nftables.SetElement {
	els := []nftables.SetElement{{Key: p.Addr().AsSlice()}}
	if end := netipx.PrefixLastIP(p).Next(); end.IsValid() {
		els = append(els, nftables.SetElement{Key: end.AsSlice(), IntervalEnd: true})
	}
	return els
}

// interval is one range held by a kernel interval set, with the raw elements
// that encode it (needed to delete it again).
type interval struct {
	lo, hi   netip.Addr // inclusive
	elements []nftables.SetElement
}

// prefixes reports the interval as the fewest CIDRs covering it exactly.
func (iv interval) prefixes() []netip.Prefix { return netipx.IPRangeFrom(iv.lo, iv.hi).Prefixes() }

// isPrefix reports whether the interval encodes exactly p.
func (iv interval) isPrefix(p netip.Prefix) bool {
	return iv.lo == p.Addr() && iv.hi == netipx.PrefixLastIP(p)
}

// parseIntervals decodes the elements of an interval set as dumped by the
// kernel (in no promised order). Rules of the kernel's rbtree lookup: an
// address matches when the closest element at or below it is a start
// element. So an end element with no open start (nft adds one at 0.0.0.0) is
// a no-op, and a start followed by another start, or by nothing, runs up to
// that next start, or to the top of the address space.
func parseIntervals(els []nftables.SetElement) []interval {
	// Sorted as small keys pointing into els: the elements themselves are
	// large, and a set of thousands is read on every incremental update.
	type key struct {
		addr netip.Addr
		end  bool
		i    int // index in els
	}
	sorted := make([]key, 0, len(els))
	for i, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			continue
		}
		sorted = append(sorted, key{addr: a, end: e.IntervalEnd, i: i})
	}
	// At equal keys the end of one interval precedes the start of the next
	// (adjacent prefixes share that address); then the dump's order, so
	// the result is that of a stable sort.
	slices.SortFunc(sorted, func(a, b key) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		switch {
		case a.end != b.end && a.end:
			return -1
		case a.end != b.end:
			return 1
		}
		return cmp.Compare(a.i, b.i)
	})

	var out []interval
	var open *key
	closeAt := func(next netip.Addr, end *nftables.SetElement) {
		iv := interval{lo: open.addr, hi: next.Prev(), elements: []nftables.SetElement{els[open.i]}}
		if end != nil {
			iv.elements = append(iv.elements, *end)
		}
		if iv.hi.IsValid() && iv.lo.Compare(iv.hi) <= 0 {
			out = append(out, iv)
		}
		open = nil
	}
	for i := range sorted {
		e := &sorted[i]
		switch {
		case e.end && open != nil:
			closeAt(e.addr, &els[e.i])
		case e.end:
			// Nothing open: nothing to close.
		default:
			if open != nil {
				closeAt(e.addr, nil)
			}
			open = e
		}
	}
	if open != nil {
		max := netip.IPv4Unspecified()
		if open.addr.Is6() {
			max = netip.IPv6Unspecified()
		}
		out = append(out, interval{lo: open.addr, hi: netipx.PrefixLastIP(netip.PrefixFrom(max, 0)), elements: []nftables.SetElement{els[open.i]}})
	}
	return out
}
