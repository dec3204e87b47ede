package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crosswire/crosswire/test/netcluster"
)

// linkMTU reads a device's MTU inside a node namespace.
func linkMTU(n *netcluster.Node, dev string) (int, error) {
	out, err := netcluster.Exec(n.NS, "cat", "/sys/class/net/"+dev+"/mtu")
	if err != nil {
		return 0, err
	}
	var mtu int
	_, err = fmt.Sscan(strings.TrimSpace(out), &mtu)
	return mtu, err
}

func wantMTU(n *netcluster.Node, want int) func() error {
	return func() error {
		got, err := linkMTU(n, iface)
		if err != nil {
			return err
		}
		if got != want {
			return errString(fmt.Sprintf("%s MTU %d, want %d", iface, got, want))
		}
		return nil
	}
}

// TestTunnelMTUFollowsTheUnderlay: with the default --mtu 0 the agent sizes
// the tunnel from the route to its peers (underlay 1400 - 60 for IPv4
// endpoints), and follows a change of the underlay's MTU within a resync;
// traffic stays encrypted.
func TestTunnelMTUFollowsTheUnderlay(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1, UnderlayMTU: 1400})
	n1 := e.c.Nodes[0]
	eventually(t, 3*resync+2*time.Second, "MTU from the underlay", wantMTU(n1, 1340))

	// The whole segment shrinks, as when an operator changes the network's
	// MTU: every node's uplink and every bridge port.
	for _, n := range e.c.Nodes {
		mustExec(t, n.NS, "ip", "link", "set", "eth0", "mtu", "1300")
		mustExec(t, e.c.Underlay, "ip", "link", "set", fmt.Sprintf("n%d", n.Index), "mtu", "1300")
	}
	for _, n := range e.c.Nodes {
		eventually(t, 3*resync+2*time.Second, n.Name+" MTU after the underlay shrank", wantMTU(n, 1240))
	}
	if !strings.Contains(e.agents[n1.Name].Log(), "tunnel MTU follows the underlay") {
		t.Error("MTU change not logged")
	}
	// A full-size packet through the new MTU: 1240 - 28 bytes of headers.
	if _, err := netcluster.Exec(n1.Pods[0].NS, "ping", "-c", "2", "-W", "2", "-M", "do", "-s", "1212", e.c.Nodes[1].Pods[0].IP.String()); err != nil {
		t.Fatalf("full-size ping through the shrunk tunnel: %v", err)
	}
	assertEncrypted(t, e.c)
}
