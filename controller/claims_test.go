package controller

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// scanOverlaps and scanContainsAddr are the linear scans the claims index
// replaces: the reference it must agree with, answer for answer.
func scanOverlaps(a, b []netip.Prefix) (netip.Prefix, netip.Prefix, bool) {
	for _, x := range a {
		for _, y := range b {
			if x.Overlaps(y) {
				return x, y, true
			}
		}
	}
	return netip.Prefix{}, netip.Prefix{}, false
}

func scanContainsAddr(ps []netip.Prefix, a netip.Addr) (netip.Prefix, bool) {
	for _, p := range ps {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// randPrefix draws from a small space so that nesting, equality and
// overlap across lengths are common; both families.
func randPrefix(r *rand.Rand) netip.Prefix {
	if r.IntN(4) == 0 {
		a := netip.AddrFrom16([16]byte{0xfd, 0, byte(r.IntN(4)), byte(r.IntN(4) << 6), 0, byte(r.IntN(3))})
		return netip.PrefixFrom(a, 32+r.IntN(33)).Masked()
	}
	a := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(8) << 5), byte(r.IntN(4) << 6)})
	return netip.PrefixFrom(a, 8+r.IntN(25)).Masked()
}

func randAddr(r *rand.Rand) netip.Addr {
	if r.IntN(4) == 0 {
		return netip.AddrFrom16([16]byte{0xfd, 0, byte(r.IntN(4)), byte(r.IntN(256)), 0, byte(r.IntN(3)), 15: byte(r.IntN(256))})
	}
	return netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
}

// TestClaimsMatchScan grows claim lists at random (with nested and
// duplicate claims, as one node's own CIDRs may be) and checks every query
// against the scan, including which claim is reported.
func TestClaimsMatchScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var hits, misses int
	for round := range 300 {
		c := newClaims(0)
		var list []netip.Prefix
		for step := range 40 {
			q := make([]netip.Prefix, 1+r.IntN(3))
			for i := range q {
				q[i] = randPrefix(r)
			}
			x1, y1, ok1 := scanOverlaps(q, list)
			x2, y2, ok2 := c.overlaps(q)
			if x1 != x2 || y1 != y2 || ok1 != ok2 {
				t.Fatalf("round %d step %d: overlaps(%v) over %v: index %v %v %v, scan %v %v %v", round, step, q, list, x2, y2, ok2, x1, y1, ok1)
			}
			if ok1 {
				hits++
			} else {
				misses++
			}
			a := randAddr(r)
			p1, in1 := scanContainsAddr(list, a)
			if p2, in2 := c.containsAddr(a); p1 != p2 || in1 != in2 {
				t.Fatalf("round %d step %d: containsAddr(%v) over %v: index %v %v, scan %v %v", round, step, a, list, p2, in2, p1, in1)
			}
			if r.IntN(3) > 0 { // add regardless of overlap: the index must not assume disjoint claims
				c.add(q)
				list = append(list, q...)
			}
		}
	}
	if hits < 1000 || misses < 1000 {
		t.Fatalf("%d overlapping and %d disjoint queries: the draw no longer exercises both", hits, misses)
	}
}
