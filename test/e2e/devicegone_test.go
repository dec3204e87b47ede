package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

// TestTunnelLinkDeletedAgentExits: deleting the tunnel link behind the
// agent closes its wireguard-go device for good. The agent exits with an
// error that says so (a supervisor then starts one that opens a new
// device), nothing crosses in clear while it is gone (the blackhole routes
// drop remote pod traffic), and a restarted agent encrypts again.
func TestTunnelLinkDeletedAgentExits(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1})
	n1, n2 := e.c.Nodes[0], e.c.Nodes[1]
	cap := e.c.StartCapture(t)
	if _, err := netcluster.Exec(n1.NS, "ip", "link", "del", cwcluster.Iface); err != nil {
		t.Fatal(err)
	}
	agent := e.agents[n1.Name]
	err := agent.Wait(10 * time.Second)
	switch {
	case err == nil:
		t.Fatal("the agent exited with status 0 after losing its device")
	case strings.Contains(err.Error(), "still running"):
		t.Fatalf("the agent still runs on a closed device: %v\n%s", err, tail(agent.Log(), 20))
	}
	if !strings.Contains(agent.Log(), "closed under the agent") {
		t.Errorf("the agent's log does not say why it exited:\n%s", tail(agent.Log(), 20))
	}
	if err := n1.Pods[0].Ping(n2.Pods[0].IP, 3); err == nil {
		t.Error("pod traffic crossed while node1 had no tunnel")
	}
	counts, err := cap.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("underlay while node1 had no tunnel: %s", counts)
	if counts.Plaintext != 0 {
		t.Fatalf("plaintext while node1 had no tunnel: %s %v", counts, counts.PlaintextSamples)
	}
	e.startAgent(n1)
	assertEncrypted(t, e.c)
}
