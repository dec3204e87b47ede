package nft

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/google/nftables"
)

func start(a string) nftables.SetElement {
	return nftables.SetElement{Key: netip.MustParseAddr(a).AsSlice()}
}

func end(a string) nftables.SetElement {
	return nftables.SetElement{Key: netip.MustParseAddr(a).AsSlice(), IntervalEnd: true}
}

func TestIntervalElements(t *testing.T) {
	tests := []struct {
		name string
		in   []netip.Prefix
		want []nftables.SetElement
	}{
		{"none", nil, []nftables.SetElement{}},
		{"one /24", pfx("10.244.2.0/24"), []nftables.SetElement{start("10.244.2.0"), end("10.244.3.0")}},
		{"host /32", pfx("10.0.0.7/32"), []nftables.SetElement{start("10.0.0.7"), end("10.0.0.8")}},
		{"adjacent share a key", pfx("10.0.0.0/24", "10.0.1.0/24"), []nftables.SetElement{start("10.0.0.0"), end("10.0.1.0"), start("10.0.1.0"), end("10.0.2.0")}},
		{"v4 default: open to the top", pfx("0.0.0.0/0"), []nftables.SetElement{start("0.0.0.0")}},
		{"top /32: open to the top", pfx("255.255.255.255/32"), []nftables.SetElement{start("255.255.255.255")}},
		{"top /24: open to the top", pfx("255.255.255.0/24"), []nftables.SetElement{start("255.255.255.0")}},
		{"v6 default", pfx("::/0"), []nftables.SetElement{start("::")}},
		{"v6 /64", pfx("fd00:1::/64"), []nftables.SetElement{start("fd00:1::"), end("fd00:1:0:1::")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := intervalElements(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("intervalElements(%v) =\n%v\nwant\n%v", tt.in, got, tt.want)
			}
			for _, e := range got {
				if want := tt.in[0].Addr().BitLen() / 8; len(e.Key) != want {
					t.Fatalf("key %x has %d bytes, want %d", e.Key, len(e.Key), want)
				}
			}
		})
	}
}

// parseIntervals must invert intervalElements whatever the dump order (the
// kernel dumps its rbtree in descending order) and cope with what nft adds by
// hand (a leading 0.0.0.0 end element, open intervals).
func TestParseIntervalsRoundTrip(t *testing.T) {
	for _, in := range [][]netip.Prefix{
		pfx("10.244.2.0/24"),
		pfx("10.0.0.0/24", "10.0.1.0/24", "10.0.3.0/24"),
		pfx("0.0.0.0/0"),
		pfx("1.0.0.0/8", "255.255.255.255/32"),
		pfx("::/0"),
		pfx("fd00:1::/64", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120"),
	} {
		els := intervalElements(in)
		slices.Reverse(els)
		els = append(els, end("0.0.0.0")) // nft's leading no-op element, in odd order
		var got []netip.Prefix
		for _, iv := range parseIntervals(els) {
			got = append(got, iv.prefixes()...)
			if !slices.ContainsFunc(in, iv.isPrefix) {
				t.Errorf("interval %s-%s is not one of %v", iv.lo, iv.hi, in)
			}
		}
		if !slices.Equal(got, in) {
			t.Errorf("parseIntervals(intervalElements(%v)) = %v", in, got)
		}
	}
}

func TestParseIntervalsKeepsRawElements(t *testing.T) {
	ivs := parseIntervals([]nftables.SetElement{end("10.0.1.0"), start("10.0.0.0"), start("200.0.0.0")})
	if len(ivs) != 2 {
		t.Fatalf("got %d intervals, want 2: %+v", len(ivs), ivs)
	}
	if want := []nftables.SetElement{start("10.0.0.0"), end("10.0.1.0")}; !reflect.DeepEqual(ivs[0].elements, want) {
		t.Errorf("first interval elements = %v, want %v", ivs[0].elements, want)
	}
	if want := []nftables.SetElement{start("200.0.0.0")}; !reflect.DeepEqual(ivs[1].elements, want) {
		t.Errorf("open interval elements = %v, want %v", ivs[1].elements, want)
	}
	if got := ivs[1].prefixes(); !slices.Equal(got, pfx("200.0.0.0/5", "208.0.0.0/4", "224.0.0.0/3")) {
		t.Errorf("open interval prefixes = %v", got)
	}
}
