package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

// TestTamperedRoutingLeaksNothing: another program deletes crosswire's
// policy rules and flushes its routing table on a node. Until the next
// resync (an hour here), marked pod packets follow the main table's plain
// host-gw routes to the underlay; the leak guards (crosswire's mark-based
// rule and the guard table, whichever runs first) must drop them, in both
// families, and count them. Then, with both guards deleted too, the same
// traffic crosses in clear: the capture would have seen a leak.
func TestTamperedRoutingLeaksNothing(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1, Pods: netcluster.DualStack}, "--resync-interval", "1h")
	c := e.c
	n1, n2 := c.Nodes[0], c.Nodes[1]
	src, dst := n1.Pods[0], n2.Pods[0]
	encryptedPodTraffic(t, c, 9400, ip4, ip6)

	for _, fam := range []string{"-4", "-6"} {
		rules, err := netcluster.Exec(n1.NS, "ip", fam, "rule", "show")
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^(\d+):.*lookup ` + strconv.Itoa(cwcluster.Table) + `\b`).FindStringSubmatch(rules)
		if m == nil {
			t.Fatalf("%s: no %s rule for table %d:\n%s", n1.Name, fam, cwcluster.Table, rules)
		}
		if _, err := netcluster.Exec(n1.NS, "ip", fam, "rule", "del", "priority", m[1]); err != nil {
			t.Fatal(err)
		}
		if _, err := netcluster.Exec(n1.NS, "ip", fam, "route", "flush", "table", strconv.Itoa(cwcluster.Table)); err != nil {
			t.Fatal(err)
		}
	}
	guardBefore := guardDrops(t, n1)
	counts := pingsGoNowhere(t, c, src, dst, "crosswire's routing gone (it cannot be, encrypted or not)")
	t.Logf("underlay with the policy rules and table %d gone on %s: %s", cwcluster.Table, n1.Name, counts)
	if counts.Plaintext != 0 {
		t.Errorf("plaintext pod packets on the underlay: %s %v", counts, counts.PlaintextSamples)
	}
	dropped := guardDrops(t, n1) - guardBefore
	t.Logf("%s: leak guards dropped %d packets", n1.Name, dropped)
	if dropped < 6 {
		t.Errorf("leak guards dropped %d packets, want the 6 echo requests (3 per family)", dropped)
	}

	// Control: without the guards the same traffic leaks, so the zero
	// above is their doing. The agent is stopped first (the datapath stays
	// as it is): it would repair its nft tables, and with them the routing,
	// as soon as they changed.
	e.stopAgent(n1, syscall.SIGTERM)
	mustExec(t, n1.NS, "nft", "delete", "table", "inet", cwcluster.NftGuardTable)
	listing, err := netcluster.Exec(n1.NS, "nft", "-a", "list", "chain", "inet", cwcluster.NftTable, nft.ChainLeakGuard)
	if err != nil {
		t.Fatal(err)
	}
	h := regexp.MustCompile(`# handle (\d+)`).FindStringSubmatch(lineContaining(listing, nft.CommentLeakGuard))
	if h == nil {
		t.Fatalf("no handle for the leak guard rule:\n%s", listing)
	}
	if _, err := netcluster.Exec(n1.NS, "nft", "delete", "rule", "inet", cwcluster.NftTable, nft.ChainLeakGuard, "handle", h[1]); err != nil {
		t.Fatal(err)
	}
	leaksWithout(t, c, src, dst, "the guards")
}

// guardDrops is what both leak guards on n have dropped: crosswire's
// mark-based rule and the guard table's rules.
func guardDrops(t *testing.T, n *netcluster.Node) uint64 {
	c := markCounters(t, n)
	return c[nft.CommentLeakGuard] + c[nft.CommentGuard4] + c[nft.CommentGuard6]
}

// TestNftTableTamperedLeaksNothing: another program flushes, or deletes,
// crosswire's nft table on a node. A running agent hears of it from the
// kernel's nftables notifications and repairs at once, not at its next
// resync (an hour here). With no agent running (stopped, the datapath left
// in place), nothing marks pod traffic any more, so it follows the main
// table's plain host-gw routes to the underlay; the guard table must drop
// it, in both families, and count it. Then, with the guard table deleted
// too, the same traffic crosses in clear: the capture would have seen a
// leak.
func TestNftTableTamperedLeaksNothing(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1, Pods: netcluster.DualStack}, "--resync-interval", "1h")
	c := e.c
	n1, n2 := c.Nodes[0], c.Nodes[1]
	src, dst := n1.Pods[0], n2.Pods[0]
	encryptedPodTraffic(t, c, 9410, ip4, ip6)
	tampers := [][]string{
		{"nft", "flush", "table", "inet", cwcluster.NftTable},
		{"nft", "delete", "table", "inet", cwcluster.NftTable},
	}
	marking := func() error {
		return contains(n1, "ip saddr @local4 ip daddr @remote4", "nft", "list", "table", "inet", cwcluster.NftTable)
	}

	for _, tamper := range tampers {
		t.Run("agent running, "+strings.Join(tamper[1:3], " "), func(t *testing.T) {
			cp := c.StartCapture(t)
			ping := netcluster.StartPinger(t, "node1->node2", src.NS, dst.IP)
			mustExec(t, n1.NS, tamper...)
			start := time.Now()
			eventually(t, 5*time.Second, "repaired without a resync", marking)
			t.Logf("%q repaired %v later", strings.Join(tamper, " "), time.Since(start).Round(time.Millisecond))
			eventually(t, 5*time.Second, "pings flow after the repair", func() error {
				if !ping.RepliedSince(time.Now().Add(-200 * time.Millisecond)) {
					return errString("no reply since the repair")
				}
				return nil
			})
			ping.Stop()
			stopEncrypted(t, cp, "the tampering and the repair")
		})
	}

	e.stopAgent(n1, syscall.SIGTERM)
	for _, tamper := range tampers {
		t.Run("agent stopped, "+strings.Join(tamper[1:3], " "), func(t *testing.T) {
			mustExec(t, n1.NS, tamper...)
			before := markCounters(t, n1)
			counts := pingsGoNowhere(t, c, src, dst, "crosswire's table gone (nothing marks it for the tunnel)")
			t.Logf("underlay after %q on %s: %s", strings.Join(tamper, " "), n1.Name, counts)
			if counts.Plaintext != 0 {
				t.Errorf("plaintext pod packets on the underlay: %s %v", counts, counts.PlaintextSamples)
			}
			after := markCounters(t, n1)
			for _, cm := range []string{nft.CommentGuard4, nft.CommentGuard6} {
				if d := after[cm] - before[cm]; d < 3 {
					t.Errorf("guard rule %q dropped %d packets, want the 3 echo requests", cm, d)
				}
			}
			e.startAgent(n1)
			assertEncrypted(t, c)
			e.stopAgent(n1, syscall.SIGTERM)
		})
	}

	mustExec(t, n1.NS, "nft", "flush", "table", "inet", cwcluster.NftTable)
	mustExec(t, n1.NS, "nft", "delete", "table", "inet", cwcluster.NftGuardTable)
	leaksWithout(t, c, src, dst, "the guard table")
	// Until its first apply a starting agent leaves in place what it
	// finds: here, nothing.
	e.startAgent(n1)
	eventually(t, 10*time.Second, "tables restored", marking)
	assertEncrypted(t, c)
}

func lineContaining(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// pingsGoNowhere sends 3 pings of each family from src to dst under an
// underlay capture, expects none answered (why: what was tampered with),
// and returns what the capture saw.
func pingsGoNowhere(t *testing.T, c *netcluster.Cluster, src, dst *netcluster.Pod, why string) netcluster.Counts {
	t.Helper()
	cp := c.StartCapture(t)
	for _, dstIP := range []string{dst.IP.String(), dst.IP6.String()} {
		if out, err := netcluster.Exec(src.NS, "ping", "-c", "3", "-i", "0.2", "-W", "1", dstIP); err == nil {
			t.Errorf("ping %s answered with %s:\n%s", dstIP, why, out)
		}
	}
	counts, err := cp.Stop()
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// leaksWithout is the control of a leak test: with what (the guards)
// removed too, src's pings to dst cross the underlay in clear, so the
// test's zero was their doing.
func leaksWithout(t *testing.T, c *netcluster.Cluster, src, dst *netcluster.Pod, what string) {
	t.Helper()
	cp := c.StartCapture(t)
	_, _ = netcluster.Exec(src.NS, "ping", "-c", "2", "-i", "0.2", "-W", "1", dst.IP.String())
	counts, err := cp.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("control, without %s: %s", what, counts)
	if counts.Plaintext == 0 {
		t.Errorf("control: no plaintext without %s either (%s); the test no longer proves them", what, counts)
	}
}
