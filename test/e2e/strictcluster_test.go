package e2e

import (
	"strings"
	"testing"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

// TestStrictClusterCIDRs: a node that none of the agents know yet (it
// joined while they were down or could not apply, or they have not seen
// its Node) is reached in clear even in strict mode: its pod CIDR is in no
// set. With --cluster-cidrs the guard table drops the traffic instead
// (capture: 0 plaintext, counted); without, the same pings cross in clear
// (the control).
func TestStrictClusterCIDRs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster bool
	}{{"with cluster CIDRs", true}, {"control without", false}} {
		t.Run(tc.name, func(t *testing.T) {
			c := netcluster.New(t, netcluster.Options{Nodes: 3, PodsPerNode: 1, Pods: netcluster.DualStack})
			args := []string{"--strict"}
			if tc.cluster {
				var nets []string
				for _, p := range c.PodNets() {
					nets = append(nets, p.String())
				}
				args = append(args, "--cluster-cidrs", strings.Join(nets, ","))
			}
			cw := cwcluster.New(c, agentBin, resync, args...)
			n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
			if err := cw.StartNodes(n1, n2); err != nil {
				t.Fatal(err)
			}
			if err := cw.WaitConvergedNodes(n1, n2); err != nil {
				t.Fatal(err)
			}
			before := markCounters(t, n1)
			cp := c.StartCapture(t)
			for _, dst := range []string{n3.Pods[0].IP.String(), n3.Pods[0].IP6.String()} {
				_, _ = netcluster.Exec(n1.Pods[0].NS, "ping", "-c", "3", "-i", "0.2", "-W", "1", dst)
			}
			counts, err := cp.Stop()
			if err != nil {
				t.Fatal(err)
			}
			after := markCounters(t, n1)
			d4 := after[nft.CommentGuardCluster4] - before[nft.CommentGuardCluster4]
			d6 := after[nft.CommentGuardCluster6] - before[nft.CommentGuardCluster6]
			t.Logf("node1 pod -> unknown node3's pod: %s; cluster rules dropped %d (IPv4) and %d (IPv6)", counts, d4, d6)
			switch {
			case tc.cluster && counts.Plaintext != 0:
				t.Errorf("plaintext to a node the agents do not know: %s %v", counts, counts.PlaintextSamples)
			case tc.cluster && (d4 < 3 || d6 < 3):
				t.Errorf("cluster rules dropped %d and %d, want the 3 echo requests of each family", d4, d6)
			case !tc.cluster && counts.Plaintext == 0:
				t.Errorf("control: no plaintext without --cluster-cidrs (%s); the test no longer proves the rule", counts)
			}
			// Node to node traffic the agents know stays encrypted.
			cap2 := c.StartCapture(t)
			if err := n1.Pods[0].Ping(n2.Pods[0].IP, 2); err != nil {
				t.Errorf("node1 -> node2: %v", err)
			}
			stopEncrypted(t, cap2, "pings between known strict nodes")
		})
	}
}
