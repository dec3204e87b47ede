package e2e

import (
	"strings"
	"testing"

	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

func markCounters(t testing.TB, n *netcluster.Node) map[string]uint64 {
	t.Helper()
	c, err := cwcluster.MarkCounters(n)
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	return c
}

func (e *env) wgShow(t testing.TB, n *netcluster.Node, args ...string) string {
	t.Helper()
	out, err := e.WG(n, args...)
	if err != nil {
		t.Fatalf("wg %v on %s: %v", args, n.Name, err)
	}
	return out
}

func (e *env) wgPeers(t testing.TB, n *netcluster.Node) map[string]cwcluster.WGPeer {
	t.Helper()
	p, err := e.WGPeers(n)
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	return p
}

func mustExec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := netcluster.Exec(ns, args...)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out
}

func describe(n *netcluster.Node) string { return n.Name + " (" + n.NS + ")" }

// stopEncrypted stops the underlay capture and fails the test unless it
// saw WireGuard and not one plaintext pod packet; what names the traffic.
func stopEncrypted(t testing.TB, cp *netcluster.Capture, what string) netcluster.Counts {
	t.Helper()
	counts, err := cp.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("underlay during %s: %s", what, counts)
	if counts.Plaintext != 0 || counts.WireGuard == 0 {
		t.Errorf("%s not encrypted: %s %v", what, counts, counts.PlaintextSamples)
	}
	return counts
}
