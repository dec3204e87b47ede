package wgtun

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testKey(b byte) Key { return Key{b, 0xaa} }

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func lines(ls ...string) string {
	if len(ls) == 0 {
		return ""
	}
	return strings.Join(ls, "\n") + "\n"
}

func TestDiff(t *testing.T) {
	a, b, c := testKey(1), testKey(2), testKey(3)
	epA := netip.MustParseAddrPort("192.168.77.1:51820")
	epA2 := netip.MustParseAddrPort("192.168.77.11:51820")
	epB := netip.MustParseAddrPort("[fd00::2]:51820")
	peerA := Peer{PublicKey: a, Endpoint: epA, AllowedIPs: pfxs("10.244.1.0/24", "fd10:1::/64")}
	peerB := Peer{PublicKey: b, Endpoint: epB, AllowedIPs: pfxs("10.244.2.0/24")}

	tests := []struct {
		name             string
		current, desired []Peer
		keepalive        int
		want             string
	}{
		{
			name: "empty", want: "",
		},
		{
			name:    "add peer with keepalive",
			desired: []Peer{peerA}, keepalive: 25,
			want: lines("public_key="+a.hex(), "endpoint=192.168.77.1:51820",
				"persistent_keepalive_interval=25", "allowed_ip=10.244.1.0/24", "allowed_ip=fd10:1::/64"),
		},
		{
			name:    "add peer without endpoint or keepalive",
			desired: []Peer{{PublicKey: c, AllowedIPs: pfxs("10.244.3.0/24")}},
			want:    lines("public_key="+c.hex(), "allowed_ip=10.244.3.0/24"),
		},
		{
			name:    "IPv6 endpoint is bracketed",
			desired: []Peer{peerB},
			want:    lines("public_key="+b.hex(), "endpoint=[fd00::2]:51820", "allowed_ip=10.244.2.0/24"),
		},
		{
			name:    "remove peer",
			current: []Peer{peerA, peerB}, desired: []Peer{peerB},
			want: lines("public_key="+a.hex(), "remove=true"),
		},
		{
			name:    "unchanged writes nothing",
			current: []Peer{peerA, peerB}, desired: []Peer{peerB, peerA}, keepalive: 25,
			want: "",
		},
		{
			name:    "unmasked and duplicate prefixes and mapped endpoint compare equal",
			current: []Peer{peerA},
			desired: []Peer{{PublicKey: a, Endpoint: netip.MustParseAddrPort("[::ffff:192.168.77.1]:51820"),
				AllowedIPs: pfxs("fd10:1::/64", "10.244.1.77/24", "10.244.1.0/24")}},
			want: "",
		},
		{
			name:    "endpoint change is update_only",
			current: []Peer{peerA},
			desired: []Peer{{PublicKey: a, Endpoint: epA2, AllowedIPs: peerA.AllowedIPs}},
			want:    lines("public_key="+a.hex(), "update_only=true", "endpoint=192.168.77.11:51820"),
		},
		{
			name:    "desired without endpoint keeps the device's",
			current: []Peer{peerA},
			desired: []Peer{{PublicKey: a, AllowedIPs: peerA.AllowedIPs}},
			want:    "",
		},
		{
			name:    "one allowed IP added",
			current: []Peer{peerA},
			desired: []Peer{{PublicKey: a, Endpoint: epA, AllowedIPs: pfxs("10.244.1.0/24", "fd10:1::/64", "10.245.0.0/16")}},
			want:    lines("public_key="+a.hex(), "update_only=true", "allowed_ip=10.245.0.0/16"),
		},
		{
			name:    "one allowed IP removed",
			current: []Peer{peerA},
			desired: []Peer{{PublicKey: a, Endpoint: epA, AllowedIPs: pfxs("10.244.1.0/24")}},
			want:    lines("public_key="+a.hex(), "update_only=true", "allowed_ip=-fd10:1::/64"),
		},
		{
			name:    "mixed: removals first, then by key, keepalive only for new",
			current: []Peer{peerB, {PublicKey: c, AllowedIPs: pfxs("10.244.3.0/24")}},
			desired: []Peer{
				{PublicKey: b, Endpoint: epB, AllowedIPs: pfxs("10.244.2.0/25", "10.244.4.0/24")},
				peerA,
			},
			keepalive: 5,
			want: lines(
				"public_key="+c.hex(), "remove=true",
				"public_key="+a.hex(), "endpoint=192.168.77.1:51820", "persistent_keepalive_interval=5",
				"allowed_ip=10.244.1.0/24", "allowed_ip=fd10:1::/64",
				"public_key="+b.hex(), "update_only=true",
				"allowed_ip=-10.244.2.0/24", "allowed_ip=10.244.2.0/25", "allowed_ip=10.244.4.0/24"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(tc.current, tc.desired, tc.keepalive)
			if got != tc.want {
				t.Fatalf("Diff:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestDiffDeterministic(t *testing.T) {
	var desired []Peer
	for i := byte(20); i > 0; i-- {
		desired = append(desired, Peer{PublicKey: testKey(i), AllowedIPs: pfxs("10.0."+string('0'+i%10)+".0/24", "10.1.0.0/16")})
	}
	first := Diff(nil, desired, 0)
	// Reverse the input; output must not depend on order.
	rev := make([]Peer, len(desired))
	for i, p := range desired {
		rev[len(desired)-1-i] = p
	}
	for i := 0; i < 20; i++ {
		if got := Diff(nil, rev, 0); got != first {
			t.Fatalf("Diff output depends on input order or map iteration:\n%s\nvs\n%s", got, first)
		}
	}
	if !strings.HasPrefix(first, "public_key="+testKey(1).hex()) {
		t.Fatalf("peers not sorted by key:\n%s", first)
	}
}

// ipcGetSample is the output of a UAPI get on a wireguard-go device with two
// peers, one that has completed a handshake (format of device/uapi.go).
const ipcGetSample = `private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a
listen_port=51820
fwmark=8192
public_key=b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33
preshared_key=0000000000000000000000000000000000000000000000000000000000000000
protocol_version=1
endpoint=192.168.99.2:51820
last_handshake_time_sec=1750000000
last_handshake_time_nsec=123456789
tx_bytes=1234
rx_bytes=5678
persistent_keepalive_interval=25
allowed_ip=10.99.0.2/32
allowed_ip=10.244.2.0/24
allowed_ip=fd10:2::/64
public_key=58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376
preshared_key=0000000000000000000000000000000000000000000000000000000000000000
protocol_version=1
endpoint=[fd00::3]:51821
last_handshake_time_sec=0
last_handshake_time_nsec=0
tx_bytes=0
rx_bytes=0
persistent_keepalive_interval=0
errno=0

`

func TestParseIpcGet(t *testing.T) {
	st, err := parseIpcGet(ipcGetSample)
	if err != nil {
		t.Fatal(err)
	}
	if st.ListenPort != 51820 || st.FwMark != 0x2000 {
		t.Errorf("port/fwmark = %d/%#x", st.ListenPort, st.FwMark)
	}
	k1, _ := parseHexKey("b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33")
	k2, _ := parseHexKey("58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376")
	want := []PeerStats{
		{ // sorted by key: 0x58... before 0xb8...
			Peer: Peer{PublicKey: k2, Endpoint: netip.MustParseAddrPort("[fd00::3]:51821")},
		},
		{
			Peer: Peer{PublicKey: k1, Endpoint: netip.MustParseAddrPort("192.168.99.2:51820"),
				AllowedIPs: pfxs("10.244.2.0/24", "10.99.0.2/32", "fd10:2::/64")},
			LastHandshake: time.Unix(1750000000, 123456789),
			TxBytes:       1234, RxBytes: 5678,
		},
	}
	if !reflect.DeepEqual(st.Peers, want) {
		t.Fatalf("peers:\n%+v\nwant:\n%+v", st.Peers, want)
	}
	// The key the device prints in hex is the one wg(8) prints in base64.
	if got := k1.String(); got != "uFmW/sycfx/G0lcqdu2hHVm80gvo5UOxXOS9hajnWjM=" {
		t.Errorf("base64 of peer key = %s", got)
	}
}

func TestParseIpcGetErrors(t *testing.T) {
	for _, in := range []string{
		"listen_port=notaport\n",
		"public_key=zz\n",
		"public_key=" + testKey(1).hex() + "\nallowed_ip=10.0.0.0/33\n",
		"public_key=" + testKey(1).hex() + "\nendpoint=nohost\n",
		"garbage\n",
		"errno=2\n",
	} {
		if _, err := parseIpcGet(in); err == nil {
			t.Errorf("parseIpcGet(%q) accepted", in)
		}
	}
}

func TestDiffAgainstParsedState(t *testing.T) {
	// What SetPeers does: parse the device, diff against the same peers.
	st, err := parseIpcGet(ipcGetSample)
	if err != nil {
		t.Fatal(err)
	}
	var cur []Peer
	for _, p := range st.Peers {
		cur = append(cur, p.Peer)
	}
	if d := Diff(cur, cur, 25); d != "" {
		t.Fatalf("diff of parsed state against itself: %q", d)
	}
}
