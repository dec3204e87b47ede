package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// minusScan is minus as it was: a scan of b per prefix of a.
func minusScan(a, b []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range a {
		if !slices.Contains(b, p) {
			out = append(out, p)
		}
	}
	return out
}

// BenchmarkMinus is what one Node event costs the incremental apply in
// set differences (it takes two: removed and added) with n remote prefixes.
func BenchmarkMinus(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		var applied []netip.Prefix
		for i := range n {
			applied = append(applied, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
		}
		remote := append(slices.Clone(applied), netip.MustParsePrefix("10.250.0.0/24"))
		for _, impl := range []struct {
			name string
			f    func(a, b []netip.Prefix) []netip.Prefix
		}{{"map", minus}, {"scan", minusScan}} {
			b.Run(fmt.Sprintf("%s/%d", impl.name, n), func(b *testing.B) {
				for b.Loop() {
					impl.f(applied, remote)
					impl.f(remote, applied)
				}
			})
		}
	}
}

func TestMinusMatchesScan(t *testing.T) {
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	a := []netip.Prefix{p("10.0.1.0/24"), p("10.0.0.0/24"), p("10.0.1.0/24"), p("fd00::/64"), p("10.0.2.0/24")}
	b := []netip.Prefix{p("10.0.2.0/24"), p("10.0.0.0/16"), p("fd00::/64")}
	for _, c := range [][2][]netip.Prefix{{a, b}, {b, a}, {a, nil}, {nil, a}, {a, a}} {
		if got, want := minus(c[0], c[1]), minusScan(c[0], c[1]); !slices.Equal(got, want) {
			t.Errorf("minus(%v, %v) = %v, want %v", c[0], c[1], got, want)
		}
	}
}
