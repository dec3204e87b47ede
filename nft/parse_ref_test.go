package nft

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/google/nftables"
	"go4.org/netipx"
)

// parseIntervalsStable is parseIntervals as it was (a stable sort of the
// elements themselves): the reference the faster one must match exactly.
func parseIntervalsStable(els []nftables.SetElement) []interval {
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
		out = append(out, interval{lo: open.addr, hi: netipx.PrefixLastIP(netip.PrefixFrom(max, 0)), elements: []nftables.SetElement{open.raw}})
	}
	return out
}

// TestParseIntervalsMatchesStableSort draws element lists with duplicate
// keys (starts and ends at one address, repeated elements told apart by
// their comment), bad keys and both families, in random order.
func TestParseIntervalsMatchesStableSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 2000 {
		var els []nftables.SetElement
		for i := range r.IntN(12) {
			var key []byte
			switch r.IntN(6) {
			case 0:
				key = []byte{10, 0, 0, byte(r.IntN(4) * 64)}
			case 1:
				key = []byte{1, 2, 3} // not an address
			case 2:
				a := netip.AddrFrom16([16]byte{0xfd, 15: byte(r.IntN(4))})
				key = a.AsSlice()
			default:
				key = []byte{10, 0, byte(r.IntN(3)), byte(r.IntN(3) * 128)}
			}
			els = append(els, nftables.SetElement{Key: key, IntervalEnd: r.IntN(2) == 0, Comment: string(rune('a' + i))})
		}
		if got, want := parseIntervals(els), parseIntervalsStable(els); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: %v:\ngot  %v\nwant %v", round, els, got, want)
		}
	}
}
