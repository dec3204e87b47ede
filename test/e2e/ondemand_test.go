package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/test/netcluster"
)

// TestOnDemandPeers runs a cluster with --on-demand-peers: no WireGuard
// peer exists until traffic asks for it, the very first packet of a flow
// gets through (encrypted), only the nodes that talk configure each other,
// idle peers are removed again, and after a restart a remote that still
// holds the old session is back within a second or two instead of the
// ~15 s WireGuard would take to notice on its own.
func TestOnDemandPeers(t *testing.T) {
	const idle = 10 * time.Second // the agent's minimum
	e := startEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1}, "--on-demand-peers", "--peer-idle-timeout="+idle.String())
	c := e.c
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]

	// Converged without any traffic: every node knows both others, and
	// WireGuard holds none of them.
	configured := func(n *netcluster.Node) int { return len(e.wgPeers(t, n)) }
	for _, n := range c.Nodes {
		eventually(t, 30*time.Second, n.Name+" applied", func() error {
			out, _ := e.crosswireStatus(t, n, "-o", "json")
			var r agentstatus.Report
			if err := json.NewDecoder(strings.NewReader(out)).Decode(&r); err != nil {
				return fmt.Errorf("status not served yet: %w", err)
			}
			if !r.Datapath.Applied || r.Sets["remote4"] != 2 || len(r.Peers) != 2 || !r.OnDemandPeers {
				return fmt.Errorf("applied %v, remote4 %d, %d peers known, on-demand %v",
					r.Datapath.Applied, r.Sets["remote4"], len(r.Peers), r.OnDemandPeers)
			}
			return nil
		})
		if got := configured(n); got != 0 {
			t.Fatalf("%s: %d WireGuard peers before any traffic, want 0", n.Name, got)
		}
	}

	cap := c.StartCapture(t)
	// One echo request, one second to answer: the packet that made node1
	// configure node2 is the one that must arrive.
	if err := n1.Pods[0].Ping(n2.Pods[0].IP, 1); err != nil {
		t.Fatalf("first packet node1 -> node2: %v", err)
	}
	for n, want := range map[*netcluster.Node]int{n1: 1, n2: 1, n3: 0} {
		if got := configured(n); got != want {
			t.Errorf("%s: %d peers configured after node1 <-> node2 traffic, want %d", n.Name, got, want)
		}
	}
	crossNodeTraffic(t, c)
	for _, n := range c.Nodes {
		r, _ := e.statusJSON(t, n)
		if r.PeersConfigured != 2 || configured(n) != 2 {
			t.Errorf("%s: status says %d configured, wg show %d; want 2", n.Name, r.PeersConfigured, configured(n))
		}
	}
	stopEncrypted(t, cap, "on-demand activation and all-pairs traffic")

	// Quiet now: the peers go once idle for the timeout (checked every
	// idle/4), and the next packet brings them back.
	quiet := time.Now()
	for _, n := range c.Nodes {
		eventually(t, 3*idle, n.Name+" trims idle peers", func() error {
			if got := configured(n); got != 0 {
				return fmt.Errorf("%d peers configured", got)
			}
			return nil
		})
	}
	t.Logf("idle peers removed %v after the traffic stopped", time.Since(quiet).Round(100*time.Millisecond))
	// Captured again from here to the end: the packets that bring a trimmed
	// peer back, and those that meet a restarted node's stale session,
	// must cross encrypted too.
	cap = c.StartCapture(t)
	if err := n3.Pods[0].Ping(n1.Pods[0].IP, 1); err != nil {
		t.Fatalf("first packet node3 -> node1 after the trim: %v", err)
	}

	// node3 holds a session with node1; node1 restarts and loses it.
	e.stopAgent(n1, syscall.SIGTERM)
	started := time.Now()
	e.startAgent(n1)
	eventually(t, 5*time.Second, "node3 -> node1 after node1's restart", func() error {
		return n3.Pods[0].Ping(n1.Pods[0].IP, 1)
	})
	t.Logf("node3 -> node1 answered %v after node1's agent started", time.Since(started).Round(10*time.Millisecond))
	stopEncrypted(t, cap, "on-demand reactivation after a trim and after a restart")
}
