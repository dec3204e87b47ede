package nft

import (
	"net/netip"
	"slices"
	"testing"

	"go4.org/netipx"
)

func pfx(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name         string
		in           []netip.Prefix
		want4, want6 []netip.Prefix
	}{
		{"empty", nil, nil, nil},
		{"unmasked input is masked", pfx("10.244.1.7/24", "fd00::1/64"), pfx("10.244.1.0/24"), pfx("fd00::/64")},
		{"duplicates after masking", pfx("10.244.1.0/24", "10.244.1.9/24", "10.244.1.0/24"), pfx("10.244.1.0/24"), nil},
		{"contained dropped, order irrelevant", pfx("10.244.2.0/24", "10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/16"), pfx("10.0.0.0/8", "192.168.0.0/16"), nil},
		{"same start, shorter wins", pfx("10.244.0.0/24", "10.244.0.0/16"), pfx("10.244.0.0/16"), nil},
		{"adjacent kept", pfx("10.0.1.0/24", "10.0.0.0/24"), pfx("10.0.0.0/24", "10.0.1.0/24"), nil},
		{"default route swallows all", pfx("10.0.0.0/8", "0.0.0.0/0", "255.255.255.255/32"), pfx("0.0.0.0/0"), nil},
		{"families split and sorted", pfx("fd00:2::/64", "10.2.0.0/16", "fd00:1::/64", "10.1.0.0/16"), pfx("10.1.0.0/16", "10.2.0.0/16"), pfx("fd00:1::/64", "fd00:2::/64")},
		{"v4-mapped v6 becomes v4", pfx("::ffff:10.9.0.0/112"), pfx("10.9.0.0/16"), nil},
		{"short mapped-range prefix stays v6", pfx("::/64"), nil, pfx("::/64")},
		{"v6 contained", pfx("fd00::/48", "fd00:0:0:1::/64", "::/0"), nil, pfx("::/0")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got4, got6, err := normalize(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got4, tt.want4) || !slices.Equal(got6, tt.want6) {
				t.Fatalf("normalize(%v) = %v, %v; want %v, %v", tt.in, got4, got6, tt.want4, tt.want6)
			}
		})
	}
}

func TestNormalizeRejectsInvalid(t *testing.T) {
	if _, _, err := normalize([]netip.Prefix{{}}); err == nil {
		t.Fatal("zero prefix accepted")
	}
}

func TestCanonicalKeepsNested(t *testing.T) {
	got4, _, err := canonical(pfx("10.1.0.0/16", "10.0.0.0/8", "10.1.0.5/16"))
	if err != nil {
		t.Fatal(err)
	}
	if want := pfx("10.0.0.0/8", "10.1.0.0/16"); !slices.Equal(got4, want) {
		t.Fatalf("canonical = %v, want %v", got4, want)
	}
}

func TestPrefixLastIP(t *testing.T) {
	for in, want := range map[string]string{
		"10.244.1.0/24":      "10.244.1.255",
		"10.0.0.0/9":         "10.127.255.255",
		"0.0.0.0/0":          "255.255.255.255",
		"1.2.3.4/32":         "1.2.3.4",
		"fd00::/64":          "fd00::ffff:ffff:ffff:ffff",
		"::/0":               "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		"255.255.255.254/31": "255.255.255.255",
	} {
		if got := netipx.PrefixLastIP(netip.MustParsePrefix(in)); got != netip.MustParseAddr(want) {
			t.Errorf("netipx.PrefixLastIP(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestIntervalPrefixes(t *testing.T) {
	tests := []struct {
		lo, hi string
		want   []netip.Prefix
	}{
		{"10.0.0.0", "10.0.0.255", pfx("10.0.0.0/24")},
		{"10.0.0.1", "10.0.0.5", pfx("10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31")},
		{"0.0.0.0", "255.255.255.255", pfx("0.0.0.0/0")},
		{"255.255.255.255", "255.255.255.255", pfx("255.255.255.255/32")},
		{"128.0.0.0", "255.255.255.255", pfx("128.0.0.0/1")},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", pfx("::/0")},
	}
	for _, tt := range tests {
		got := interval{lo: netip.MustParseAddr(tt.lo), hi: netip.MustParseAddr(tt.hi)}.prefixes()
		if !slices.Equal(got, tt.want) {
			t.Errorf("interval %s-%s prefixes = %v, want %v", tt.lo, tt.hi, got, tt.want)
		}
	}
}
