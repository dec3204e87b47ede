package netcluster

import (
	"net/netip"
	"strings"
	"testing"
)

func TestLayoutStacks(t *testing.T) {
	c, err := layout(Options{Prefix: "cwt", Pods: DualStack})
	if err != nil {
		t.Fatal(err)
	}
	n2 := c.Nodes[1]
	if n2.PodCIDR != netip.MustParsePrefix("10.244.2.0/24") || n2.PodCIDR6 != netip.MustParsePrefix("fd00:10:244:2::/64") ||
		n2.BridgeIP6 != netip.MustParseAddr("fd00:10:244:2::1") || n2.UnderlayIP != netip.MustParseAddr("192.168.77.12") ||
		n2.UnderlayIP6 != netip.MustParseAddr("fd00:77::c") || c.UnderlayStack != DualStack {
		t.Errorf("dual-stack node2 = %+v, underlay %v", n2, c.UnderlayStack)
	}
	if p := n2.Pods[1]; p.IP != netip.MustParseAddr("10.244.2.11") || p.IP6 != netip.MustParseAddr("fd00:10:244:2::b") || len(p.IPs()) != 2 {
		t.Errorf("dual-stack pod = %+v", p)
	}

	c, err = layout(Options{Prefix: "cwt", Pods: IPv6, Underlay: IPv6})
	if err != nil {
		t.Fatal(err)
	}
	n1 := c.Nodes[0]
	if n1.PodCIDR != netip.MustParsePrefix("fd00:10:244:1::/64") || len(n1.PodCIDRs()) != 1 ||
		n1.UnderlayIP != netip.MustParseAddr("fd00:77::b") || len(n1.UnderlayIPs()) != 1 || n1.Pods[0].IP != n1.Pods[0].IP6 {
		t.Errorf("IPv6-only node1 = %+v", n1)
	}
	for _, p := range []netip.Prefix{n1.PodCIDR} {
		if !strings.HasPrefix(p.String(), "fd00:10:244:") || !podNetV6.Contains(p.Addr()) {
			t.Errorf("pod CIDR %s outside the captured pod nets", p)
		}
	}
	for _, o := range []Options{{Pods: 7}, {Underlay: -1}, {UnderlayMTU: 1000}} {
		if _, err := layout(o); err == nil {
			t.Errorf("layout(%+v): no error", o)
		}
	}
}

// TestDualStackOverIPv6Underlay: host-gw works for both pod families when
// the underlay has IPv6 only (IPv4 routes with IPv6 next hops), and the
// capture sees that plaintext.
func TestDualStackOverIPv6Underlay(t *testing.T) {
	needRoot(t)
	c := New(t, Options{Nodes: 2, PodsPerNode: 1, Pods: DualStack, Underlay: IPv6})
	a, b := c.Nodes[0].Pods[0], c.Nodes[1].Pods[0]
	if out, err := Exec(c.Nodes[0].NS, "ip", "-4", "addr", "show", "dev", UnderlayDev); err != nil || strings.Contains(out, "inet ") {
		t.Fatalf("underlay has IPv4: %s %v", out, err)
	}
	cp := c.StartCapture(t)
	for _, dst := range b.IPs() {
		if err := a.Ping(dst, 2); err != nil {
			t.Errorf("ping %s: %v", dst, err)
		}
	}
	counts, err := cp.Stop()
	if err != nil {
		t.Fatal(err)
	}
	// 2 x 2 requests and replies per family, all in clear without crosswire.
	if counts.Plaintext < 8 {
		t.Errorf("capture saw %s; want >= 8 plaintext pod packets", counts)
	}
}

// TestDropPacketTooBig: with a 1400-byte underlay a pod's 1500-byte DF
// packet is refused by its node; normally the pod is told ("Frag needed"),
// in the black hole it hears nothing.
func TestDropPacketTooBig(t *testing.T) {
	needRoot(t)
	for _, drop := range []bool{false, true} {
		c := New(t, Options{Nodes: 2, PodsPerNode: 1, UnderlayMTU: 1400, DropPacketTooBig: drop})
		a, b := c.Nodes[0].Pods[0], c.Nodes[1].Pods[0]
		out, err := Exec(a.NS, "ping", "-n", "-c", "1", "-W", "1", "-M", "do", "-s", "1472", b.IP.String())
		if err == nil {
			t.Fatalf("drop=%t: 1500-byte DF ping over a 1400 underlay succeeded: %s", drop, out)
		}
		told := strings.Contains(out, "Frag needed")
		if told == drop {
			t.Errorf("drop=%t: pod told of the MTU = %t: %s", drop, told, out)
		}
		if err := a.Ping(b.IP, 1); err != nil {
			t.Errorf("drop=%t: small ping: %v", drop, err)
		}
	}
}
