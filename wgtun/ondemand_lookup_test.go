package wgtun

import (
	"net/netip"
	"testing"

	"go.uber.org/zap"
)

func odTestTable(t *testing.T, peers ...Peer) (*odTable, map[Key]*odPeer) {
	t.Helper()
	desired := indexPeers(peers)
	ps := map[Key]*odPeer{}
	for k := range desired {
		ps[k] = &odPeer{key: k}
	}
	return buildODTable(desired, ps), ps
}

func TestODTableLongestPrefix(t *testing.T) {
	a := Peer{PublicKey: testKey(1), AllowedIPs: pfxs("10.0.0.0/8", "fd00::/16")}
	b := Peer{PublicKey: testKey(2), AllowedIPs: pfxs("10.1.0.0/16", "fd00:1::/32", "0.0.0.0/0")}
	c := Peer{PublicKey: testKey(3), AllowedIPs: pfxs("10.1.2.0/24", "10.1.2.3/32", "fd00:1:2:3::/64", "fd00:1:2:3::7/128")}
	// Unmasked on purpose: the table masks, as the device does.
	d := Peer{PublicKey: testKey(4), AllowedIPs: pfxs("192.168.7.9/24", "::ffff:172.16.0.0/108")}
	tab, ps := odTestTable(t, a, b, c, d)
	for _, tc := range []struct {
		addr string
		want *odPeer
	}{
		{"10.9.9.9", ps[a.PublicKey]},
		{"10.1.9.9", ps[b.PublicKey]},
		{"10.1.2.9", ps[c.PublicKey]},
		{"10.1.2.3", ps[c.PublicKey]},
		{"11.0.0.1", ps[b.PublicKey]}, // default route
		{"192.168.7.1", ps[d.PublicKey]},
		{"fd00:9::1", ps[a.PublicKey]},
		{"fd00:1:9::1", ps[b.PublicKey]},
		{"fd00:1:2:3::8", ps[c.PublicKey]},
		{"fd00:1:2:3::7", ps[c.PublicKey]},
		{"fd01::1", nil},
		{"::ffff:172.16.1.1", ps[d.PublicKey]}, // IPv6 prefix, IPv6 lookup
		{"2001:db8::1", nil},
	} {
		if got := tab.lookupAddr(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("lookup %s: got %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestODTableNoMatch(t *testing.T) {
	tab, _ := odTestTable(t, Peer{PublicKey: testKey(1), AllowedIPs: pfxs("10.244.1.0/24")})
	for _, addr := range []string{"10.244.2.1", "10.244.0.255", "fd00::1", "0.0.0.0"} {
		if got := tab.lookupAddr(netip.MustParseAddr(addr)); got != nil {
			t.Errorf("lookup %s: got %v, want none", addr, got)
		}
	}
	empty, _ := odTestTable(t)
	if got := empty.lookupAddr(netip.MustParseAddr("10.0.0.1")); got != nil {
		t.Errorf("empty table matched: %v", got)
	}
}

func TestODTableDuplicatePrefixSmallerKeyWins(t *testing.T) {
	for range 20 { // map order varies
		tab, ps := odTestTable(t,
			Peer{PublicKey: testKey(9), AllowedIPs: pfxs("10.0.0.0/24")},
			Peer{PublicKey: testKey(3), AllowedIPs: pfxs("10.0.0.0/24")},
			Peer{PublicKey: testKey(5), AllowedIPs: pfxs("10.0.0.0/24")})
		if got := tab.lookupAddr(netip.MustParseAddr("10.0.0.1")); got != ps[testKey(3)] {
			t.Fatalf("owner %v, want the smallest key", got.key)
		}
	}
}

func TestODTableLookupPacket(t *testing.T) {
	tab, ps := odTestTable(t, Peer{PublicKey: testKey(1), AllowedIPs: pfxs("10.244.1.0/24", "fd00:244:1::/64")})
	want := ps[testKey(1)]
	v4 := make([]byte, 28)
	v4[0] = 0x45
	copy(v4[12:16], []byte{10, 244, 1, 7}) // source: must not be what is looked up
	copy(v4[16:20], []byte{10, 244, 1, 9})
	if got := tab.lookupPacket(v4); got != want {
		t.Errorf("IPv4 packet: got %v", got)
	}
	copy(v4[16:20], []byte{10, 244, 2, 9})
	if got := tab.lookupPacket(v4); got != nil {
		t.Errorf("IPv4 packet to another prefix matched")
	}
	v6 := make([]byte, 48)
	v6[0] = 0x60
	dst := netip.MustParseAddr("fd00:244:1::5").As16()
	copy(v6[24:40], dst[:])
	if got := tab.lookupPacket(v6); got != want {
		t.Errorf("IPv6 packet: got %v", got)
	}
	for _, pkt := range [][]byte{nil, {}, v4[:19], v6[:39], {0x10, 0, 0, 0}} {
		if got := tab.lookupPacket(pkt); got != nil {
			t.Errorf("packet % x matched %v", pkt, got)
		}
	}
}

func TestODTableByEndpoint(t *testing.T) {
	a := Peer{PublicKey: testKey(1), Endpoint: netip.MustParseAddrPort("192.168.1.1:51820")}
	b := Peer{PublicKey: testKey(2), Endpoint: netip.MustParseAddrPort("192.168.1.1:51821")}
	c := Peer{PublicKey: testKey(3), Endpoint: netip.MustParseAddrPort("[2001:db8::1]:51820")}
	d := Peer{PublicKey: testKey(4)} // no endpoint: only outbound can activate it
	tab, ps := odTestTable(t, a, b, c, d)
	peersAt := func(ip string) map[*odPeer]bool {
		s := tab.byEndpoint(netip.MustParseAddr(ip))
		m := map[*odPeer]bool{}
		for _, p := range append([]*odPeer{s.first}, s.more...) {
			if p != nil {
				m[p] = true
			}
		}
		return m
	}
	if got := peersAt("192.168.1.1"); len(got) != 2 || !got[ps[a.PublicKey]] || !got[ps[b.PublicKey]] {
		t.Errorf("shared IP: %v, want a and b", got)
	}
	// The v4 socket's addresses and v4-mapped ones from a v6 socket agree.
	if got := peersAt("::ffff:192.168.1.1"); len(got) != 2 {
		t.Errorf("v4-mapped: %d peers, want 2", len(got))
	}
	if got := peersAt("2001:db8::1"); len(got) != 1 || !got[ps[c.PublicKey]] {
		t.Errorf("IPv6 endpoint: %v", got)
	}
	if got := peersAt("192.168.1.2"); len(got) != 0 {
		t.Errorf("unknown IP matched %v", got)
	}
}

// TestSetDesiredLocked: the returned target is desired ∩ active, peers the
// device holds are adopted, dropped peers lose their state, and the table
// is rebuilt only when keys, prefixes or endpoints change.
func TestSetDesiredLocked(t *testing.T) {
	od := newOnDemand(defaultIdleTimeout, Key{}, zap.NewNop())
	a := Peer{PublicKey: testKey(1), Endpoint: netip.MustParseAddrPort("192.0.2.1:51820"), AllowedIPs: pfxs("10.1.0.0/24")}
	b := Peer{PublicKey: testKey(2), Endpoint: netip.MustParseAddrPort("192.0.2.2:51820"), AllowedIPs: pfxs("10.2.0.0/24")}
	now := timeZero.Add(1)
	if target := od.setDesiredLocked(indexPeers([]Peer{a, b}), nil, now); len(target) != 0 {
		t.Fatalf("nothing active, target %v", target)
	}
	tab := od.table.Load()
	if tab == nil || tab.lookupAddr(netip.MustParseAddr("10.2.0.1")) != od.peers[b.PublicKey] {
		t.Fatal("table lacks b")
	}
	// The same set again: same table.
	od.setDesiredLocked(indexPeers([]Peer{a, b}), nil, now)
	if od.table.Load() != tab {
		t.Error("unchanged desired set rebuilt the table")
	}
	od.markActive(od.peers[a.PublicKey], now)
	a2 := a
	a2.AllowedIPs = pfxs("10.1.0.0/24", "10.1.1.0/24")
	target := od.setDesiredLocked(indexPeers([]Peer{a2, b}), nil, now)
	if len(target) != 1 || len(target[a.PublicKey].AllowedIPs) != 2 {
		t.Fatalf("target %v, want a with its new prefixes", target)
	}
	if od.table.Load() == tab {
		t.Error("changed prefixes kept the old table")
	}
	// b on the device: adopted. a dropped: inactive and forgotten.
	target = od.setDesiredLocked(indexPeers([]Peer{b}), indexPeers([]Peer{b}), now)
	if len(target) != 1 || target[b.PublicKey].PublicKey != b.PublicKey {
		t.Fatalf("target %v, want b adopted", target)
	}
	if _, ok := od.peers[a.PublicKey]; ok {
		t.Error("dropped peer kept its state")
	}
	if d, c := od.nDesired.Load(), od.nConfigured.Load(); d != 1 || c != 1 {
		t.Errorf("counts desired %d configured %d, want 1 1", d, c)
	}
}
