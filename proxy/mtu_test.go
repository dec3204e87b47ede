package proxy

import (
	"net/netip"
	"testing"
)

func TestTunnelMTU(t *testing.T) {
	for _, tc := range []struct {
		underlay   int
		ep6, pods6 bool
		want       int
	}{
		{1500, false, false, 1440},
		{1500, true, false, 1420},
		{1500, true, true, 1420},
		{9000, false, true, 8940},
		{1400, false, false, 1340},
		{1300, true, true, 1280}, // 1220 would break IPv6: floor
		{1300, true, false, 1220},
		{600, false, false, 576},
		{70000, false, false, 65535},
	} {
		got, err := TunnelMTU(tc.underlay, tc.ep6, tc.pods6)
		if err != nil || got != tc.want {
			t.Errorf("TunnelMTU(%d, ep6=%t, pods6=%t) = %d, %v; want %d", tc.underlay, tc.ep6, tc.pods6, got, err, tc.want)
		}
	}
	if _, err := TunnelMTU(0, false, false); err == nil {
		t.Error("TunnelMTU accepted underlay MTU 0")
	}
}

func TestUnderlayMTUInNamespace(t *testing.T) {
	ns, h := testNetns(t)
	if _, err := UnderlayMTU(h, nil); err == nil {
		t.Fatal("UnderlayMTU without routes or endpoints: no error")
	}
	ipIn(t, ns, "link", "add", "u1", "mtu", "1500", "type", "veth", "peer", "name", "u1p")
	ipIn(t, ns, "link", "add", "u2", "mtu", "1400", "type", "veth", "peer", "name", "u2p")
	ipIn(t, ns, "link", "set", "u1", "up")
	ipIn(t, ns, "link", "set", "u2", "up")
	ipIn(t, ns, "link", "set", "u1p", "up")
	ipIn(t, ns, "link", "set", "u2p", "up")
	ipIn(t, ns, "addr", "add", "192.168.77.11/24", "dev", "u1")
	ipIn(t, ns, "addr", "add", "fd00:77::b/64", "dev", "u2", "nodad")
	ipIn(t, ns, "route", "add", "default", "via", "192.168.77.1", "dev", "u1")
	ipIn(t, ns, "route", "add", "10.9.0.0/16", "via", "192.168.77.2", "dev", "u1", "mtu", "1300")

	for _, tc := range []struct {
		eps  []string
		want int
	}{
		{nil, 1500},                                     // default route's device
		{[]string{"192.168.77.12"}, 1500},               // device MTU
		{[]string{"192.168.77.12", "fd00:77::c"}, 1400}, // lowest over endpoints
		{[]string{"10.9.1.1"}, 1300},                    // route MTU wins over the device's
		{[]string{"::ffff:192.168.77.12"}, 1500},        // mapped address unmapped
	} {
		var eps []netip.Addr
		for _, s := range tc.eps {
			eps = append(eps, netip.MustParseAddr(s))
		}
		got, err := UnderlayMTU(h, eps)
		if err != nil || got != tc.want {
			t.Errorf("UnderlayMTU(%v) = %d, %v; want %d", tc.eps, got, err, tc.want)
		}
	}
	if _, err := UnderlayMTU(h, []netip.Addr{netip.MustParseAddr("2001:db8::1")}); err == nil {
		t.Error("UnderlayMTU to an unroutable endpoint: no error")
	}
	// The underlay changes: the answer follows.
	ipIn(t, ns, "link", "set", "u1", "mtu", "9000")
	if got, err := UnderlayMTU(h, []netip.Addr{netip.MustParseAddr("192.168.77.12")}); err != nil || got != 9000 {
		t.Errorf("after raising u1 to 9000: %d, %v", got, err)
	}
}
