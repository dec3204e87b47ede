package controller

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/crosswire/crosswire/proxy"
)

func TestParseKey(t *testing.T) {
	k1 := testKey(1) // "AQEB...AQE="
	if !strings.HasSuffix(k1, "E=") {
		t.Fatalf("test assumption broken: %q", k1)
	}
	// The last base64 digit of a 32-byte key carries two unused bits; the
	// standard decoder accepts them set, so "F=" is another spelling of k1.
	alt := k1[:len(k1)-2] + "F="
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{"canonical", k1, k1, ""},
		{"whitespace trimmed", " \t" + k1 + "\n ", k1, ""},
		{"non-canonical spelling", alt, k1, ""},
		{"url alphabet", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)), "", "not base64"},
		{"unpadded", strings.TrimRight(k1, "="), "", "not base64"},
		{"garbage", "hello world!", "", "not base64"},
		{"short", base64.StdEncoding.EncodeToString(make([]byte, 31)), "", "key is 31 bytes, want 32"},
		{"long", base64.StdEncoding.EncodeToString(make([]byte, 33)), "", "key is 33 bytes, want 32"},
		{"empty after trim", " ", "", "key is 0 bytes"},
		{"all zeros", base64.StdEncoding.EncodeToString(make([]byte, 32)), "", "all zeros"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKey(tt.in)
			checkErr(t, err, tt.wantErr)
			if s := got.String(); err == nil && s != tt.want {
				t.Errorf("parseKey(%q) = %q, want %q", tt.in, s, tt.want)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q does not contain %q", err, want)
	}
}

func TestParseNode(t *testing.T) {
	k1 := testKey(1)
	tests := []struct {
		name    string
		node    *corev1.Node
		port    uint16
		want    proxy.Peer
		wantErr string // substring; "" means success
	}{
		{
			name: "full node from annotations",
			node: mkNode("a", withKey(k1), withEndpoint("192.168.77.1:51820"), withPodCIDRs("10.244.1.0/24")),
			port: 51820,
			want: proxy.Peer{Name: "a", PublicKey: pubKey(1), Endpoint: ap("192.168.77.1:51820"), PodCIDRs: pfx("10.244.1.0/24")},
		},
		{
			name: "key whitespace trimmed and canonicalised",
			node: mkNode("a", withKey("\n  "+k1[:len(k1)-2]+"F=  \t"), withPodCIDR("10.244.1.0/24")),
			want: proxy.Peer{Name: "a", PublicKey: pubKey(1), PodCIDRs: pfx("10.244.1.0/24")},
		},
		{
			name: "no key is not an error",
			node: mkNode("a", withPodCIDR("10.244.1.0/24")),
			want: proxy.Peer{Name: "a", PodCIDRs: pfx("10.244.1.0/24")},
		},
		{
			name: "blank key is no key",
			node: mkNode("a", withKey("   "), withPodCIDR("10.244.1.0/24")),
			want: proxy.Peer{Name: "a", PodCIDRs: pfx("10.244.1.0/24")},
		},
		{name: "key not base64", node: mkNode("a", withKey("not!base64")), wantErr: "annotation crosswire.dev/public-key: not base64"},
		{name: "key wrong length", node: mkNode("a", withKey(base64.StdEncoding.EncodeToString(make([]byte, 16)))), wantErr: "annotation crosswire.dev/public-key: key is 16 bytes"},
		{name: "key all zeros", node: mkNode("a", withKey(base64.StdEncoding.EncodeToString(make([]byte, 32)))), wantErr: "annotation crosswire.dev/public-key: key is all zeros"},
		{name: "no name", node: mkNode("", withPodCIDR("10.244.1.0/24")), wantErr: "no name"},

		// Endpoint precedence.
		{
			name: "override beats endpoint beats InternalIP",
			node: mkNode("a", withOverride("203.0.113.5:4000"), withEndpoint("192.168.77.1:51820"), withIP("192.168.77.9")),
			port: 51820,
			want: proxy.Peer{Name: "a", Endpoint: ap("203.0.113.5:4000"), PodCIDRs: []netip.Prefix{}},
		},
		{
			name: "endpoint beats InternalIP",
			node: mkNode("a", withEndpoint("192.168.77.1:51821"), withIP("192.168.77.9")),
			port: 51820,
			want: proxy.Peer{Name: "a", Endpoint: ap("192.168.77.1:51821"), PodCIDRs: []netip.Prefix{}},
		},
		{
			name: "blank override falls through to endpoint",
			node: mkNode("a", withOverride("  "), withEndpoint(" 192.168.77.1:51821 "), withIP("192.168.77.9")),
			port: 51820,
			want: proxy.Peer{Name: "a", Endpoint: ap("192.168.77.1:51821"), PodCIDRs: []netip.Prefix{}},
		},
		{
			name: "InternalIP with default port, ExternalIP and Hostname ignored",
			node: mkNode("a", withAddr(corev1.NodeHostName, "a"), withAddr(corev1.NodeExternalIP, "198.51.100.1"), withIP("192.168.77.9"), withIP("fd00::9")),
			port: 51820,
			want: proxy.Peer{Name: "a", Endpoint: ap("192.168.77.9:51820"), PodCIDRs: []netip.Prefix{}},
		},
		{
			name: "IPv6 endpoint",
			node: mkNode("a", withEndpoint("[fd00::1]:51820")),
			want: proxy.Peer{Name: "a", Endpoint: ap("[fd00::1]:51820"), PodCIDRs: []netip.Prefix{}},
		},
		{
			name: "IPv4-mapped endpoint unmapped",
			node: mkNode("a", withEndpoint("[::ffff:192.168.77.1]:51820")),
			want: proxy.Peer{Name: "a", Endpoint: ap("192.168.77.1:51820"), PodCIDRs: []netip.Prefix{}},
		},
		{
			name: "IPv6 InternalIP",
			node: mkNode("a", withIP("fd00::9")),
			port: 7,
			want: proxy.Peer{Name: "a", Endpoint: ap("[fd00::9]:7"), PodCIDRs: []netip.Prefix{}},
		},
		{
			name: "no address at all: no endpoint, no error",
			node: mkNode("a", withAddr(corev1.NodeExternalIP, "198.51.100.1")),
			port: 51820,
			want: proxy.Peer{Name: "a", PodCIDRs: []netip.Prefix{}},
		},
		{name: "endpoint without port", node: mkNode("a", withEndpoint("192.168.77.1")), wantErr: "annotation crosswire.dev/endpoint:"},
		{name: "endpoint port 0", node: mkNode("a", withEndpoint("192.168.77.1:0")), wantErr: "annotation crosswire.dev/endpoint: endpoint 192.168.77.1:0: port 0"},
		{name: "endpoint port too big", node: mkNode("a", withEndpoint("192.168.77.1:65536")), wantErr: "annotation crosswire.dev/endpoint:"},
		{name: "endpoint loopback", node: mkNode("a", withEndpoint("127.0.0.1:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint IPv6 loopback", node: mkNode("a", withEndpoint("[::1]:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint multicast", node: mkNode("a", withEndpoint("224.0.0.1:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint IPv6 multicast", node: mkNode("a", withEndpoint("[ff02::1]:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint unspecified", node: mkNode("a", withEndpoint("0.0.0.0:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint IPv6 unspecified", node: mkNode("a", withEndpoint("[::]:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint mapped unspecified", node: mkNode("a", withEndpoint("[::ffff:0.0.0.0]:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint mapped loopback", node: mkNode("a", withEndpoint("[::ffff:127.0.0.1]:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint this-network", node: mkNode("a", withEndpoint("0.1.2.3:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint broadcast", node: mkNode("a", withEndpoint("255.255.255.255:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint link-local", node: mkNode("a", withEndpoint("[fe80::1]:51820")), wantErr: "not a unicast node address"},
		{name: "endpoint zoned", node: mkNode("a", withEndpoint("[fd00::1%eth0]:51820")), wantErr: "zoned"},
		{name: "endpoint garbage", node: mkNode("a", withEndpoint("node-a.example:51820")), wantErr: "annotation crosswire.dev/endpoint:"},
		{name: "bad override named", node: mkNode("a", withOverride("nonsense"), withEndpoint("192.168.77.1:51820")), wantErr: "annotation crosswire.dev/endpoint-override:"},
		{name: "bad InternalIP", node: mkNode("a", withIP("not-an-ip")), port: 51820, wantErr: `status.addresses InternalIP "not-an-ip"`},
		{name: "loopback InternalIP", node: mkNode("a", withIP("127.0.0.1")), port: 51820, wantErr: "status.addresses InternalIP: endpoint"},
		{name: "InternalIP with default port 0", node: mkNode("a", withIP("192.168.77.9")), port: 0, wantErr: "port 0"},
		{name: "zoned InternalIP", node: mkNode("a", withIP("fe80::1%eth0")), port: 51820, wantErr: "zoned"},

		// Pod CIDR sources.
		{
			name: "annotation beats spec, comma list with spaces, sorted",
			node: mkNode("a", withCIDRAnn(" fd00:10:244:1::/64 , 10.244.1.0/24,10.245.0.0/16 "), withPodCIDRs("10.99.0.0/24"), withPodCIDR("10.98.0.0/24")),
			want: proxy.Peer{Name: "a", PodCIDRs: pfx("10.244.1.0/24", "10.245.0.0/16", "fd00:10:244:1::/64")},
		},
		{
			name: "blank annotation falls through to spec.podCIDRs",
			node: mkNode("a", withCIDRAnn("  "), withPodCIDRs("10.244.1.0/24", "fd00:10:244:1::/64"), withPodCIDR("10.98.0.0/24")),
			want: proxy.Peer{Name: "a", PodCIDRs: pfx("10.244.1.0/24", "fd00:10:244:1::/64")},
		},
		{
			name: "spec.podCIDR when podCIDRs empty",
			node: mkNode("a", withPodCIDR("10.244.3.0/24")),
			want: proxy.Peer{Name: "a", PodCIDRs: pfx("10.244.3.0/24")},
		},
		{
			name: "duplicates collapsed",
			node: mkNode("a", withCIDRAnn("10.244.1.0/24, 10.244.1.0/24,fd00::/64,fd00::/64")),
			want: proxy.Peer{Name: "a", PodCIDRs: pfx("10.244.1.0/24", "fd00::/64")},
		},
		{
			name: "exactly 16 CIDRs accepted",
			node: mkNode("a", withCIDRAnn(cidrList(16))),
			want: proxy.Peer{Name: "a", PodCIDRs: pfx(strings.Split(cidrList(16), ",")...)},
		},
		{name: "17 CIDRs in annotation", node: mkNode("a", withCIDRAnn(cidrList(17))), wantErr: "annotation crosswire.dev/pod-cidrs: 17 CIDRs, limit 16"},
		{name: "17 CIDRs in spec", node: mkNode("a", withPodCIDRs(strings.Split(cidrList(17), ",")...)), wantErr: "spec.podCIDRs: 17 CIDRs, limit 16"},
		{name: "bad CIDR in annotation", node: mkNode("a", withCIDRAnn("10.244.1.0/24,bogus")), wantErr: `annotation crosswire.dev/pod-cidrs: CIDR "bogus"`},
		{name: "empty element in annotation", node: mkNode("a", withCIDRAnn("10.244.1.0/24,,10.244.2.0/24")), wantErr: "annotation crosswire.dev/pod-cidrs"},
		{name: "host bits in spec.podCIDRs", node: mkNode("a", withPodCIDRs("10.244.1.1/24")), wantErr: "spec.podCIDRs: CIDR \"10.244.1.1/24\": host bits set (did you mean 10.244.1.0/24?)"},
		{name: "/0 in spec.podCIDR", node: mkNode("a", withPodCIDR("0.0.0.0/0")), wantErr: "spec.podCIDR: CIDR"},
		{
			name:    "oversize crosswire annotation",
			node:    mkNode("a", withPodCIDR("10.244.1.0/24"), ann("crosswire.dev/anything", strings.Repeat("x", maxAnnotationBytes+1))),
			wantErr: "annotation crosswire.dev/anything: 4097 bytes, limit 4096",
		},
		{
			name:    "oversize key annotation",
			node:    mkNode("a", withKey(strings.Repeat(" ", maxAnnotationBytes)+k1)),
			wantErr: "annotation crosswire.dev/public-key: 4140 bytes",
		},
		{
			name: "oversize foreign annotation ignored; limit itself allowed",
			node: mkNode("a", withPodCIDR("10.244.1.0/24"), ann("example.com/big", strings.Repeat("x", 100000)),
				ann("crosswire.dev/other", strings.Repeat("x", maxAnnotationBytes))),
			want: proxy.Peer{Name: "a", PodCIDRs: pfx("10.244.1.0/24")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseNode(tt.node, tt.port)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr != "" {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseNode =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

// TestParseNodeOversizeDeterministic: with several oversize annotations the
// error must not depend on map iteration order (it ends up in Rejection).
func TestParseNodeOversizeDeterministic(t *testing.T) {
	big := strings.Repeat("x", maxAnnotationBytes+1)
	n := mkNode("a", ann("crosswire.dev/zz", big), ann("crosswire.dev/aa", big+"x"), ann("crosswire.dev/mm", big))
	for i := 0; i < 50; i++ {
		_, err := ParseNode(n, 1)
		if err == nil || !strings.HasPrefix(err.Error(), "annotation crosswire.dev/aa: 4098 bytes") {
			t.Fatalf("run %d: error %v", i, err)
		}
	}
}

// cidrList returns n distinct /24s as a comma list.
func cidrList(n int) string {
	var s []string
	for i := 0; i < n; i++ {
		s = append(s, fmt.Sprintf("10.244.%d.0/24", i))
	}
	return strings.Join(s, ",")
}

func TestParsePodCIDR(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"10.244.1.0/24", "10.244.1.0/24", ""},
		{"  10.244.0.0/16\t", "10.244.0.0/16", ""},
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{"192.168.1.7/32", "192.168.1.7/32", ""},
		{"fd00:10:244::/48", "fd00:10:244::/48", ""},
		{"fd00::/32", "fd00::/32", ""},
		{"2001:db8::/32", "2001:db8::/32", ""},
		{"fd00::1/128", "fd00::1/128", ""},
		{"240.0.0.0/8", "240.0.0.0/8", ""}, // class E is used for pods by some clusters

		{"", "", "CIDR \"\""},
		{"bogus", "", `CIDR "bogus"`},
		{"10.244.1.0", "", "CIDR"},
		{"10.244.1.0/33", "", "CIDR"},
		{"10.244.1.0/-1", "", "CIDR"},
		{"fd00::/64%eth0", "", "CIDR"},
		{"fd00::%eth0/64", "", "CIDR"},
		{"10.244.1.1/24", "", "host bits set (did you mean 10.244.1.0/24?)"},
		{"fd00::1/64", "", "host bits set"},
		{"0.0.0.0/0", "", "shorter than /8"},
		{"10.0.0.0/4", "", "shorter than /8"},
		{"10.0.0.0/7", "", "shorter than /8"},
		{"::/0", "", "shorter than /32"},
		{"fd00::/31", "", "shorter than /32"},
		{"fd00::/8", "", "shorter than /32"},
		{"::ffff:10.0.0.0/104", "", "IPv4-mapped"},
		{"::ffff:0:0/96", "", "IPv4-mapped"},
		{"127.0.0.0/8", "", "not a unicast pod range"},
		{"169.254.0.0/16", "", "not a unicast pod range"},
		{"fe80::/64", "", "not a unicast pod range"},
		{"224.0.0.0/24", "", "not a unicast pod range"},
		{"ff02::/32", "", "not a unicast pod range"},
		{"0.0.0.0/8", "", "not a unicast pod range"},
		{"::/32", "", "not a unicast pod range"},
		{"::1/128", "", "not a unicast pod range"},
		// Short prefixes that start at an ordinary address but cover
		// special ranges.
		{"169.0.0.0/8", "", "overlaps reserved range 169.254.0.0/16"},
		{"169.254.0.0/15", "", "not a unicast pod range"},
		{"169.252.0.0/14", "", "overlaps reserved range 169.254.0.0/16"},
		{"169.254.169.0/24", "", "not a unicast pod range"},
		{"0.1.0.0/16", "", "overlaps reserved range 0.0.0.0/8"},
		{"255.0.0.0/8", "", "overlaps reserved range 255.255.255.255/32"},
		{"255.255.255.255/32", "", "255.255.255.255"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePodCIDR(tt.in)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == "" && got != netip.MustParsePrefix(tt.want) {
				t.Errorf("ParsePodCIDR(%q) = %v, want %s", tt.in, got, tt.want)
			}
		})
	}
}
