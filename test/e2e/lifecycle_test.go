package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/test/netcluster"
)

// assertEncrypted sends cross-node traffic under a capture and fails on
// any plaintext pod packet or when nothing went through WireGuard.
func assertEncrypted(t *testing.T, c *netcluster.Cluster) {
	t.Helper()
	cap := c.StartCapture(t)
	a, b := c.Nodes[0].Pods[0], c.Nodes[1].Pods[0]
	eventually(t, 10*time.Second, "ping "+a.Name+" -> "+b.Name, func() error { return a.Ping(b.IP, 1) })
	if err := b.Ping(a.IP, 3); err != nil {
		t.Errorf("ping %s -> %s: %v", b.Name, a.Name, err)
	}
	stopEncrypted(t, cap, "pings both ways")
}

// TestDriftIsRepaired breaks one piece of the datapath at a time on node1
// while its pod pings node2's every 20 ms, and waits for the agent's
// resync to repair it. The underlay is captured from before the tampering
// until pings flow again after the repair: the drift window leaks
// nothing. Where crosswire still marks pod traffic (policy rule, either
// route or the WireGuard peer gone) the routes or the leak guard keep it
// off the underlay; with crosswire's nft table or node2's element of its
// remote set gone, nothing marks it and the guard table drops it.
func TestDriftIsRepaired(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1})
	n1, n2 := e.c.Nodes[0], e.c.Nodes[1]
	remote := n2.PodCIDR.String()
	run := func(args ...string) func(t *testing.T) {
		return func(t *testing.T) { mustExec(t, n1.NS, args...) }
	}
	peerPresent := func() error {
		if _, ok := e.wgPeers(t, n1)[e.keys[n2.Name]]; !ok {
			return errString("peer missing")
		}
		return nil
	}

	cases := []struct {
		name     string
		breakIt  func(t *testing.T)
		repaired func() error
		// repair is in the agent's "repaired drift" line for this case.
		repair string
	}{
		{"nft table deleted", run("nft", "delete", "table", "inet", "crosswire"), func() error {
			_, err := netcluster.Exec(n1.NS, "nft", "list", "set", "inet", "crosswire", "remote4")
			return err
		}, "table crosswire missing"},
		{"nft table flushed", run("nft", "flush", "table", "inet", "crosswire"), func() error {
			return contains(n1, "@remote4", "nft", "list", "table", "inet", "crosswire")
		}, "chain prerouting: rule"},
		{"guard table deleted", run("nft", "delete", "table", "inet", "crosswire-guard"), func() error {
			_, err := netcluster.Exec(n1.NS, "nft", "list", "set", "inet", "crosswire-guard", "remote4")
			return err
		}, "table crosswire-guard missing"},
		{"policy rule deleted", run("ip", "rule", "del", "fwmark", "0x1000/0x1000", "lookup", "202"), func() error {
			return contains(n1, "fwmark 0x1000/0x1000 lookup 202", "ip", "rule", "show")
		}, "policy rule missing"},
		{"tunnel route deleted", run("ip", "route", "del", remote, "dev", iface, "table", "202"), func() error {
			return contains(n1, remote+" dev "+iface, "ip", "route", "show", "table", "202")
		}, "routes missing for"},
		{"blackhole route deleted", run("ip", "route", "del", "blackhole", remote, "table", "202", "metric", "4096"), func() error {
			return contains(n1, "blackhole "+remote, "ip", "route", "show", "table", "202")
		}, "routes missing for"},
		{"set element deleted", run("nft", "delete", "element", "inet", "crosswire", "remote4", "{", remote, "}"), func() error {
			return contains(n1, remote, "nft", "list", "set", "inet", "crosswire", "remote4")
		}, "set remote4: missing"},
		{"wireguard peer removed", func(t *testing.T) {
			e.wgShow(t, n1, "set", iface, "peer", e.keys[n2.Name], "remove")
		}, peerPresent, "tunnel peers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cap := e.c.StartCapture(t)
			ping := netcluster.StartPinger(t, "node1->node2", n1.Pods[0].NS, n2.Pods[0].IP)
			eventually(t, 5*time.Second, "pings flow before the tampering", func() error {
				if !ping.RepliedSince(time.Now().Add(-time.Second)) {
					return errString("no reply in the last second")
				}
				return nil
			})
			repairsBefore := driftRepairs(e.agents[n1.Name].Log(), tc.repair)
			tc.breakIt(t)
			broken := time.Now()
			eventually(t, 3*resync+2*time.Second, "repair", tc.repaired)
			repaired := time.Now()
			// The agent saw the drift and repaired it: the tampering had an
			// effect (checking the kernel right after it races the resync).
			eventually(t, 5*time.Second, "the repair logged", func() error {
				if driftRepairs(e.agents[n1.Name].Log(), tc.repair) <= repairsBefore {
					return errString(`no new "repaired drift" line with ` + tc.repair)
				}
				return nil
			})
			eventually(t, 5*time.Second, "pings flow after the repair", func() error {
				if !ping.RepliedSince(repaired) {
					return errString("no reply since the repair")
				}
				return nil
			})
			time.Sleep(200 * time.Millisecond)
			ping.Stop()
			counts, err := cap.Stop()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("repaired %v after the tampering; longest reply gap %v; underlay over the window: %s",
				repaired.Sub(broken).Round(time.Millisecond), netcluster.LongestGap(ping.Replies, broken, time.Now()).Round(time.Millisecond), counts)
			if counts.WireGuard == 0 {
				t.Error("no WireGuard packets over the window")
			}
			if counts.Plaintext != 0 {
				t.Errorf("%d plaintext pod packets while %s: %v", counts.Plaintext, tc.name, counts.PlaintextSamples)
			}
			// After the repair, not one more.
			assertEncrypted(t, e.c)
		})
	}

	if log := e.agents[n1.Name].Log(); !strings.Contains(log, "repaired drift") {
		t.Errorf("agent did not log its repairs:\n%s", tail(log, 20))
	}
}

// driftRepairs counts the agent's "repaired drift" log lines that name
// reason.
func driftRepairs(log, reason string) int {
	n := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"msg":"repaired drift"`) && strings.Contains(l, reason) {
			n++
		}
	}
	return n
}

type errString string

func (e errString) Error() string { return string(e) }

func contains(n *netcluster.Node, want string, args ...string) error {
	out, err := netcluster.Exec(n.NS, args...)
	if err != nil {
		return err
	}
	if !strings.Contains(out, want) {
		return errString("no " + want + " in:\n" + out)
	}
	return nil
}

func TestRestartKeepsKeyAndDatapath(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1})
	n1 := e.c.Nodes[0]
	keyFile := filepath.Join(n1.StateDir, "private.key")
	keyBefore, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}

	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			e.stopAgent(n1, sig)
			// With the agent gone the table, rule and fail-closed blackhole
			// stay: marked traffic is dropped, not sent in clear.
			for _, check := range []error{
				contains(n1, "ip saddr @local4 ip daddr @remote4", "nft", "list", "table", "inet", "crosswire"),
				contains(n1, "lookup 202", "ip", "rule", "show"),
				contains(n1, "blackhole "+e.c.Nodes[1].PodCIDR.String(), "ip", "route", "show", "table", "202"),
			} {
				if check != nil {
					t.Fatalf("datapath flushed while the agent is down: %v", check)
				}
			}
			cap := e.c.StartCapture(t)
			_ = e.c.Nodes[0].Pods[0].Ping(e.c.Nodes[1].Pods[0].IP, 2) // expected to fail
			counts, err := cap.Stop()
			if err != nil {
				t.Fatal(err)
			}
			if counts.Plaintext != 0 {
				t.Fatalf("plaintext while the agent is down: %s %v", counts, counts.PlaintextSamples)
			}

			e.startAgent(n1)
			if pk := e.pubkey(n1); pk != e.keys[n1.Name] {
				t.Fatalf("public key changed across restart: %s -> %s", e.keys[n1.Name], pk)
			}
			assertEncrypted(t, e.c)
		})
	}
	keyAfter, err := os.ReadFile(keyFile)
	if err != nil || string(keyAfter) != string(keyBefore) {
		t.Fatalf("key file changed: %v", err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}
}

func TestCleanupRemovesEverything(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1})
	n1 := e.c.Nodes[0]
	// An unrelated table and route of another tool must survive cleanup.
	mustExec(t, n1.NS, "nft", "add", "table", "inet", "othertool")
	mustExec(t, n1.NS, "ip", "route", "add", "blackhole", "10.99.0.0/16", "table", "202")

	e.stopAgent(n1, syscall.SIGTERM)
	args := []string{agentBin, "cleanup", "--state-dir", n1.StateDir, "--socket-dir", n1.SocketDir, "--interface", iface}
	out := mustExec(t, n1.NS, args...)
	t.Log(strings.TrimSpace(out))

	if out := mustExec(t, n1.NS, "nft", "list", "tables"); strings.Contains(out, "crosswire") || !strings.Contains(out, "othertool") {
		t.Errorf("nft tables after cleanup:\n%s", out)
	}
	if out := mustExec(t, n1.NS, "ip", "rule", "show"); strings.Contains(out, "lookup 202") {
		t.Errorf("rule left:\n%s", out)
	}
	if out := mustExec(t, n1.NS, "ip", "-6", "rule", "show"); strings.Contains(out, "lookup 202") {
		t.Errorf("IPv6 rule left:\n%s", out)
	}
	if out := mustExec(t, n1.NS, "ip", "route", "show", "table", "202"); strings.TrimSpace(out) != "blackhole 10.99.0.0/16" {
		t.Errorf("table 202 after cleanup:\n%s", out)
	}
	if _, err := netcluster.Exec(n1.NS, "ip", "link", "show", iface); err == nil {
		t.Errorf("link %s left", iface)
	}
	if entries, _ := os.ReadDir(n1.SocketDir); len(entries) != 0 {
		t.Errorf("socket dir not empty: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(n1.StateDir, "private.key")); err != nil {
		t.Errorf("cleanup removed the key: %v", err)
	}
	// Cleanup twice is fine.
	mustExec(t, n1.NS, args...)
}
