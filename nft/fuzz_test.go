package nft

import (
	"net/netip"
	"slices"
	"testing"
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
				if fam[i-1].Overlaps(fam[i]) || comparePrefix(fam[i-1], fam[i]) >= 0 {
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
			for _, a := range []netip.Addr{q.Addr(), lastAddr(q)} {
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
