package nft

import (
	"net/netip"
	"slices"
	"testing"

	"go4.org/netipx"
)

// prefixesFromBytes turns fuzz input into prefixes of both families: each
// record is a tag byte (low bit: family, rest: prefix length) and the
// address bytes that follow.
func prefixesFromBytes(b []byte) []netip.Prefix {
	var out []netip.Prefix
	for len(b) > 0 && len(out) < 64 { // a node has at most 16; sets hold a few thousand
		tag := b[0]
		b = b[1:]
		n := 4
		if tag&1 == 1 {
			n = 16
		}
		if len(b) < n {
			break
		}
		a, _ := netip.AddrFromSlice(b[:n])
		b = b[n:]
		bits := int(tag>>1) % (a.BitLen() + 1)
		out = append(out, netip.PrefixFrom(a, bits))
	}
	return out
}

func coveredBy(a netip.Addr, ps []netip.Prefix) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return unmap(p).Masked().Contains(a) })
}

// FuzzElements: random prefixes -> normalize -> interval set elements ->
// parsed back as the kernel would hold them -> exactly the normalised
// prefixes, which are disjoint and cover the same addresses as the input.
//
//	go test -run XXX -fuzz FuzzElements -fuzztime 10s ./nft/
func FuzzElements(f *testing.F) {
	for _, seed := range [][]byte{
		{},
		{48, 10, 244, 1, 0},                    // 10.244.1.0/24
		{48, 10, 244, 1, 0, 48, 10, 244, 2, 0}, // two adjacent /24s
		{48, 10, 244, 1, 0, 32, 10, 244, 0, 0}, // nested in a /16
		{0, 0, 0, 0, 0},                        // 0.0.0.0/0
		{64, 255, 255, 255, 255},               // 255.255.255.255/32: open to the top
		{49, 0xfd, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},                                          // fd00:10::/24
		{193, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1},                                        // ::ffff:10.0.0.1/96: mapped
		{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // ::/0
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := prefixesFromBytes(b)
		v4, v6, err := normalize(in)
		if err != nil {
			t.Fatalf("normalize(%v): %v", in, err)
		}
		for _, fam := range [][]netip.Prefix{v4, v6} {
			for i := 1; i < len(fam); i++ {
				if fam[i-1].Overlaps(fam[i]) || fam[i-1].Compare(fam[i]) >= 0 {
					t.Fatalf("normalised %v: %v and %v overlap or are out of order", fam, fam[i-1], fam[i])
				}
			}
			var got []netip.Prefix
			for _, iv := range parseIntervals(intervalElements(fam)) {
				got = append(got, iv.prefixes()...)
			}
			if !slices.Equal(got, fam) {
				t.Fatalf("input %v\nnormalised %v\nread back  %v", in, fam, got)
			}
		}
		// Same addresses as the input: every input prefix's first and last
		// address is covered, and every normalised prefix comes from input.
		all := append(slices.Clone(v4), v6...)
		for _, p := range in {
			q := unmap(p).Masked()
			for _, a := range []netip.Addr{q.Addr(), netipx.PrefixLastIP(q)} {
				if !coveredBy(a, all) {
					t.Fatalf("%v (from %v) not covered by %v", a, p, all)
				}
			}
		}
		for _, p := range all {
			if !slices.ContainsFunc(in, func(q netip.Prefix) bool { return unmap(q).Masked() == p }) {
				t.Fatalf("normalised %v is not an input prefix (%v)", p, in)
			}
		}
	})
}

// stepsFromBytes turns fuzz input into incremental updates, one per
// prefix of b in order: bit i%32 of kinds tells whether the i-th prefix is
// removed (1) or added (0), bit 32+i%32 whether it joins the update before
// it instead (if that is of the same kind).
func stepsFromBytes(b []byte, kinds uint64) []planStep {
	var out []planStep
	for i, p := range prefixesFromBytes(b) {
		add := kinds>>(i%32)&1 == 0
		join := kinds>>(32+i%32)&1 == 1
		if n := len(out); n == 0 || out[n-1].add != add || !join {
			out = append(out, planStep{add: add})
		}
		out[len(out)-1].ps = append(out[len(out)-1].ps, p)
	}
	return out
}

// prefixBytes encodes prefixes as prefixesFromBytes decodes them (lengths
// up to 127), for seeds.
func prefixBytes(ss ...string) []byte {
	var b []byte
	for _, p := range pfx(ss...) {
		tag := byte(p.Bits() << 1)
		if p.Addr().Is6() {
			tag |= 1
		}
		b = append(append(b, tag), p.Addr().AsSlice()...)
	}
	return b
}

// FuzzPlan: a set holding random prefixes and hand-made elements, then
// random additions and removals -> planned by binary search from the
// cached intervals, which each committed update edits -> exactly the
// batches and errors of planning from the elements read afresh each time,
// and exactly the intervals the kernel then holds (see checkPlanSteps).
//
//	go test -run XXX -fuzz FuzzPlan -fuzztime 30000x ./nft/
func FuzzPlan(f *testing.F) {
	rng := func(kind byte, lo, hi string) []byte {
		return append(append([]byte{kind}, netip.MustParseAddr(lo).AsSlice()...), netip.MustParseAddr(hi).AsSlice()...)
	}
	for _, seed := range []struct {
		initial, hand, ops []byte
		kinds              uint64
	}{
		{},
		// Contained prefixes replaced, the container removed, one added.
		{prefixBytes("10.244.1.0/24", "10.244.2.0/24"), nil, prefixBytes("10.244.0.0/16", "10.244.0.0/16", "10.244.3.0/24"), 0b010},
		// Covered, stale and nested removals skipped; several in one update.
		{prefixBytes("10.244.0.0/16", "10.245.1.0/24"), nil, prefixBytes("10.244.7.0/24", "10.245.0.0/16", "10.245.1.0/25", "10.244.0.0/16", "10.246.0.0/24", "10.247.0.0/24"), 0b001110 | 0b101100<<32},
		// A hand-made range: a partial overlap is refused, a container replaces it.
		{prefixBytes("10.244.2.0/24"), rng(2, "10.244.6.128", "10.244.7.10"), prefixBytes("10.244.6.0/24", "10.244.0.0/16", "10.244.0.0/16"), 0b100},
		// Open to the top: covered, then removed, then back.
		{prefixBytes("255.255.255.0/24"), nil, prefixBytes("255.255.255.128/25", "255.255.255.0/24", "255.255.255.0/24", "0.0.0.0/0"), 0b0010},
		// IPv6, adjacent prefixes sharing a key.
		{prefixBytes("fd00:10::/64", "fd00:10:0:1::/64"), nil, prefixBytes("fd00:10:0:2::/64", "fd00:10::/64", "fd00:10::/62"), 0b010},
		// A stray end element in a gap: a prefix added around it is cut short.
		{prefixBytes("10.0.1.0/24"), rng(1, "10.0.0.5", "0.0.0.0"), prefixBytes("10.0.0.0/24", "10.0.0.0/24", "10.0.0.0/24"), 0b010},
		// A lone start runs on to the next start, and further once that goes.
		{prefixBytes("10.0.1.0/24", "10.0.3.0/24"), rng(0, "10.0.0.128", "0.0.0.0"), prefixBytes("10.0.1.0/24", "10.0.0.0/23"), 0b01},
		// nft's no-op end element at the lowest address.
		{prefixBytes("10.0.1.0/24"), rng(1, "0.0.0.0", "0.0.0.0"), prefixBytes("0.0.0.0/8", "10.0.1.0/24", "0.0.0.0/8"), 0b110},
	} {
		f.Add(seed.initial, seed.hand, seed.ops, seed.kinds)
	}
	f.Fuzz(func(t *testing.T, initial, hand, ops []byte, kinds uint64) {
		v4, v6, err := normalize(prefixesFromBytes(initial))
		if err != nil {
			t.Fatal(err)
		}
		steps := stepsFromBytes(ops, kinds)
		checkPlanSteps(t, false, append(intervalElements(v4), handMade(hand)...), steps)
		checkPlanSteps(t, true, intervalElements(v6), steps)
	})
}
