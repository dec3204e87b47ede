package nft

import (
	"net/netip"
	"slices"

	"github.com/google/nftables"
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
	if end := lastAddr(p).Next(); end.IsValid() {
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
func (iv interval) prefixes() []netip.Prefix { return rangeToPrefixes(iv.lo, iv.hi) }

// isPrefix reports whether the interval encodes exactly p.
func (iv interval) isPrefix(p netip.Prefix) bool {
	return iv.lo == p.Addr() && iv.hi == lastAddr(p)
}

// parseIntervals decodes the elements of an interval set as dumped by the
// kernel (in no promised order). Rules of the kernel's rbtree lookup: an
// address matches when the closest element at or below it is a start
// element. So an end element with no open start (nft adds one at 0.0.0.0) is
// a no-op, and a start followed by another start, or by nothing, runs up to
// that next start, or to the top of the address space.
func parseIntervals(els []nftables.SetElement) []interval {
	type el struct {
		addr netip.Addr
		raw  nftables.SetElement
	}
	var sorted []el
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			continue
		}
		sorted = append(sorted, el{addr: a, raw: e})
	}
	// At equal keys the end of one interval precedes the start of the next
	// (adjacent prefixes share that address).
	slices.SortStableFunc(sorted, func(a, b el) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		switch {
		case a.raw.IntervalEnd == b.raw.IntervalEnd:
			return 0
		case a.raw.IntervalEnd:
			return -1
		default:
			return 1
		}
	})

	var out []interval
	var open *el
	closeAt := func(next netip.Addr, end *nftables.SetElement) {
		iv := interval{lo: open.addr, hi: next.Prev(), elements: []nftables.SetElement{open.raw}}
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
		case e.raw.IntervalEnd && open != nil:
			closeAt(e.addr, &e.raw)
		case e.raw.IntervalEnd:
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
		out = append(out, interval{lo: open.addr, hi: lastAddr(netip.PrefixFrom(max, 0)), elements: []nftables.SetElement{open.raw}})
	}
	return out
}
