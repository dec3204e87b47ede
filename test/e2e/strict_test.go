package e2e

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

// TestStrictMode runs node1 and node2 with --strict while node3 is a known
// Node without a key (no agent yet, as during a rolling install):
//   - egress: node3's pod CIDR is marked and routed into the tunnel at
//     once (blackhole behind it); pod traffic to node3 is dropped, never
//     sent in clear;
//   - ingress: node3's plaintext to node1's pods is dropped and counted;
//   - node1 <-> node2 traffic, Service DNAT to a remote backend included,
//     still flows encrypted;
//   - once node3 runs an agent and publishes its key, it is a peer like
//     any other and its traffic flows encrypted.
func TestStrictMode(t *testing.T) {
	c := netcluster.New(t, netcluster.Options{Nodes: 3, PodsPerNode: 1})
	cw := cwcluster.New(c, agentBin, resync, "--strict")
	e := &env{t: t, Cluster: cw, c: c, keys: cw.Keys, agents: cw.Agents, nodesFile: cw.NodesFile}
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range cw.Agents {
				t.Logf("agent log of %s:\n%s", name, tail(p.Log(), 40))
			}
		}
	})
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	if err := cw.StartNodes(n1, n2); err != nil {
		t.Fatal(err)
	}
	if err := cw.WaitConvergedNodes(n1, n2); err != nil {
		t.Fatal(err)
	}
	e.writeNodes(c.Nodes) // node3 known, without key

	cidr3 := n3.PodCIDR.String()
	for _, n := range []*netcluster.Node{n1, n2} {
		eventually(t, 10*time.Second, n.Name+" routes keyless node3 into the tunnel", func() error {
			if err := contains(n, cidr3, "nft", "list", "set", "inet", "crosswire", "remote4"); err != nil {
				return err
			}
			return contains(n, "blackhole "+cidr3, "ip", "route", "show", "table", "202")
		})
		if peers := e.wgPeers(t, n); len(peers) != 1 {
			t.Fatalf("%s: wg peers %v, want the other strict node only", n.Name, peers)
		}
	}

	t.Run("egress to keyless node dropped", func(t *testing.T) {
		cap := c.StartCapture(t)
		if err := n1.Pods[0].Ping(n3.Pods[0].IP, 3); err == nil {
			t.Error("node1 pod reached keyless node3's pod")
		}
		counts, err := cap.Stop()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("underlay: %s", counts)
		if counts.Plaintext != 0 {
			t.Fatalf("strict egress leaked: %s %v", counts, counts.PlaintextSamples)
		}
	})

	t.Run("plaintext ingress from keyless node dropped", func(t *testing.T) {
		before := markCounters(t, n1)[nft.CommentStrictIngress4]
		if err := n3.Pods[0].Ping(n1.Pods[0].IP, 3); err == nil {
			t.Error("keyless node3's plaintext reached node1's pod")
		}
		if got := markCounters(t, n1)[nft.CommentStrictIngress4] - before; got < 3 {
			t.Errorf("strict ingress counter rose by %d, want >= 3", got)
		}
	})

	t.Run("encrypted traffic between strict nodes", func(t *testing.T) {
		netcluster.ServeTCP(t, c.Backend.NS, c.BackendAddr)
		cap := c.StartCapture(t)
		eventually(t, 5*time.Second, "node1 <-> node2", func() error {
			if err := n1.Pods[0].Ping(n2.Pods[0].IP, 2); err != nil {
				return err
			}
			return n2.Pods[0].Ping(n1.Pods[0].IP, 2)
		})
		// Service VIP DNATed on node1 to the backend on node2; the reply
		// comes back through the tunnel and is not dropped.
		got, err := netcluster.DialTCP(n1.Pods[0].NS, c.ServiceVIP, []byte("strict service"), 5*time.Second)
		if err != nil || !bytes.Equal(got, []byte("strict service")) {
			t.Errorf("Service VIP: %q, %v", got, err)
		}
		counts, err := cap.Stop()
		if err != nil {
			t.Fatal(err)
		}
		if counts.Plaintext != 0 || counts.WireGuard == 0 {
			t.Fatalf("not encrypted: %s %v", counts, counts.PlaintextSamples)
		}
	})

	// node3 publishes a malformed key: rejected, yet strict mode keeps its
	// uncontested pod CIDR fenced (marked, blackholed), not on the plain
	// route.
	t.Run("rejected node fenced", func(t *testing.T) {
		list := corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}}
		for _, n := range c.Nodes {
			node := cw.Node(n)
			if n == n3 {
				if node.Annotations == nil {
					node.Annotations = map[string]string{}
				}
				node.Annotations["crosswire.dev/public-key"] = "not-a-key"
			}
			list.Items = append(list.Items, node)
		}
		data, err := yaml.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cw.NodesFile+".tmp", data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cw.NodesFile+".tmp", cw.NodesFile); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "node1 rejects node3", func() error {
			for _, line := range strings.Split(cw.Agents[n1.Name].Log(), "\n") {
				if strings.Contains(line, `"node rejected"`) && strings.Contains(line, `"peer":"node3"`) {
					return nil
				}
			}
			return errString("no rejection of node3 logged")
		})
		for _, n := range []*netcluster.Node{n1, n2} {
			if err := contains(n, cidr3, "nft", "list", "set", "inet", "crosswire", "remote4"); err != nil {
				t.Fatalf("%s: rejected node3's pod CIDR not fenced: %v", n.Name, err)
			}
			if err := contains(n, "blackhole "+cidr3, "ip", "route", "show", "table", "202"); err != nil {
				t.Fatalf("%s: %v", n.Name, err)
			}
		}
		cap := c.StartCapture(t)
		if err := n1.Pods[0].Ping(n3.Pods[0].IP, 3); err == nil {
			t.Error("node1 pod reached rejected node3's pod")
		}
		counts, err := cap.Stop()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("underlay: %s", counts)
		if counts.Plaintext != 0 {
			t.Fatalf("traffic to a rejected node leaked in strict mode: %s %v", counts, counts.PlaintextSamples)
		}
	})

	t.Run("node3 gets a key", func(t *testing.T) {
		if err := cw.StartNodes(n3); err != nil {
			t.Fatal(err)
		}
		if err := cw.WaitConverged(); err != nil {
			t.Fatal(err)
		}
		cap := c.StartCapture(t)
		for _, pair := range [][2]*netcluster.Node{{n1, n3}, {n3, n1}, {n2, n3}} {
			if err := pair[0].Pods[0].Ping(pair[1].Pods[0].IP, 2); err != nil {
				t.Errorf("%s -> %s: %v", pair[0].Name, pair[1].Name, err)
			}
		}
		counts, err := cap.Stop()
		if err != nil {
			t.Fatal(err)
		}
		if counts.Plaintext != 0 || counts.WireGuard == 0 {
			t.Fatalf("not encrypted: %s %v", counts, counts.PlaintextSamples)
		}
	})

	ruleset := mustExec(t, n1.NS, "nft", "list", "chain", "inet", "crosswire", "prerouting")
	if !strings.Contains(ruleset, `iifname != "crosswire0" ip saddr @remote4 ip daddr @local4`) {
		t.Errorf("strict rule not listed:\n%s", ruleset)
	}
}
