package e2e

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/pqpsk"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

// TestPostQuantumMixedCluster: node3 runs without post-quantum (and
// publishes no exchange port); node1 and node2 run --post-quantum=on.
// node1-node2 use a hybrid key, the pairs with node3 classical WireGuard,
// shown as classical; all pod traffic is encrypted.
func TestPostQuantumMixedCluster(t *testing.T) {
	var classic *netcluster.Node
	e := newPQEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1}, "on", func(cw *cwcluster.Cluster) {
		classic = cw.Nodes[2]
		cw.PQNode = func(n *netcluster.Node) bool { return n != classic }
		cw.NodeArgs = func(n *netcluster.Node) []string {
			if n == classic {
				return []string{"--post-quantum=off"}
			}
			return nil
		}
	})
	c := e.c
	n1, n2 := c.Nodes[0], c.Nodes[1]
	eventually(t, pqBound, "node1 and node2 agree; node3 is classical", func() error {
		for _, pair := range [][3]any{{n1, n2, pqpsk.StatePQ}, {n2, n1, pqpsk.StatePQ}, {n1, classic, pqpsk.StateClassical}, {n2, classic, pqpsk.StateClassical}} {
			a, b, want := pair[0].(*netcluster.Node), pair[1].(*netcluster.Node), pair[2].(pqpsk.State)
			st, err := e.pqStatus(t, a)
			if err != nil {
				return err
			}
			if got := st[b.Name].State; got != string(want) {
				return fmt.Errorf("%s: peer %s is %q, want %s", a.Name, b.Name, got, want)
			}
		}
		return e.pairPSKs([]*netcluster.Node{n1, n2})
	})
	if st, err := e.pqStatus(t, classic); err != nil || len(st) != 0 {
		t.Errorf("node3 (post-quantum off) reports post-quantum states %v, %v", st, err)
	}
	// wg(8) on node1: a preshared key for node2, none for node3.
	peers, err := e.WGPeers(n1)
	if err != nil {
		t.Fatal(err)
	}
	if psk := peers[e.keys[classic.Name]].PresharedKey; psk != "(none)" {
		t.Errorf("node1's classical peer has preshared key %q", psk)
	}
	// Visible in the metrics.
	_, body := agentHTTP(t, n1, "/metrics")
	if metric(t, body, `crosswire_pq_peers{state="classical"}`) != 1 || metric(t, body, `crosswire_pq_peers{state="pq"}`) != 1 {
		t.Errorf("node1's crosswire_pq_peers do not show one pq and one classical peer")
	}
	cap := c.StartCapture(t)
	crossNodeTraffic(t, c)
	stopEncrypted(t, cap, "a mixed post-quantum and classical cluster")
}

// TestPostQuantumOnDemand: with --on-demand-peers a peer is configured
// by its first packet (those of the convergence check), with a random key;
// the exchange follows, pod traffic between every pair flows (the
// convergence check waits for it), encrypted, and every pair holds an
// agreed key.
func TestPostQuantumOnDemand(t *testing.T) {
	e := newPQEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1}, "required", nil, "--on-demand-peers")
	c := e.c
	cap := c.StartCapture(t)
	crossNodeTraffic(t, c)
	stopEncrypted(t, cap, "on-demand peers with post-quantum keys")
	eventually(t, pqBound, "every active pair agrees", func() error {
		if _, err := e.allPQ(t); err != nil {
			return err
		}
		return e.pairPSKs(c.Nodes)
	})
}

// TestKubePostQuantum: with Nodes from a real API server, each agent
// publishes its exchange port on its own Node and the agents agree on
// keys through what they read there.
func TestKubePostQuantum(t *testing.T) {
	e := newKubeEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1}, 3,
		"--post-quantum=required", "--pq-rotate="+pqRotate.String(), fmt.Sprintf("--pq-port=%d", pqpsk.DefaultPort))
	for _, n := range e.c.Nodes {
		node, err := e.Kube.Admin.CoreV1().Nodes().Get(context.Background(), n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := node.Annotations[controller.AnnotationPQPort]; got != fmt.Sprint(pqpsk.DefaultPort) {
			t.Errorf("%s published %s=%q", n.Name, controller.AnnotationPQPort, got)
		}
	}
	eventually(t, pqBound, "every pair agrees", func() error {
		if _, err := e.allPQ(t); err != nil {
			return err
		}
		return e.pairPSKs(e.c.Nodes)
	})
	cap := e.c.StartCapture(t)
	crossNodeTraffic(t, e.c)
	stopEncrypted(t, cap, "pod traffic with post-quantum keys from the API server")
}
