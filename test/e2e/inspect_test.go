package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/crosswire/crosswire/test/netcluster"
)

// markCounters reads the packet counters of crosswire's rules on a node,
// keyed by rule comment, with the nft binary an operator would use.
func markCounters(t *testing.T, n *netcluster.Node) map[string]uint64 {
	t.Helper()
	out, err := netcluster.Exec(n.NS, "nft", "-j", "list", "table", "inet", "crosswire")
	if err != nil {
		t.Fatalf("nft list on %s: %v", n.Name, err)
	}
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Comment string                       `json:"comment"`
				Expr    []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("parse nft json: %v", err)
	}
	counters := map[string]uint64{}
	for _, item := range doc.Nftables {
		if item.Rule == nil {
			continue
		}
		for _, ex := range item.Rule.Expr {
			if raw, ok := ex["counter"]; ok {
				var c struct{ Packets uint64 }
				if err := json.Unmarshal(raw, &c); err != nil {
					t.Fatalf("counter: %v", err)
				}
				counters[item.Rule.Comment] = c.Packets
			}
		}
	}
	return counters
}

// wgShow runs `wg show <iface> dump` against a node's UAPI socket. wg only
// looks in /var/run/wireguard, so it runs in a private mount namespace with
// the node's socket directory mounted there: nothing on the host changes.
func wgShow(t *testing.T, n *netcluster.Node, args ...string) string {
	t.Helper()
	script := `mount -t tmpfs tmpfs /run && mkdir -p /run/wireguard && mount --bind "$0" /run/wireguard && exec wg "$@"`
	argv := append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, n.SocketDir}, args...)
	out, err := netcluster.Exec(n.NS, argv...)
	if err != nil {
		t.Fatalf("wg %v on %s: %v", args, n.Name, err)
	}
	return out
}

// wgPeers parses `wg show <iface> dump`: peer public key -> fields
// (preshared, endpoint, allowed ips, latest handshake, rx, tx, keepalive).
func wgPeers(t *testing.T, n *netcluster.Node) map[string][]string {
	t.Helper()
	out := wgShow(t, n, "show", iface, "dump")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	peers := map[string][]string{}
	for _, l := range lines[1:] { // the first line is the interface
		f := strings.Split(l, "\t")
		if len(f) != 8 {
			t.Fatalf("wg dump line %q", l)
		}
		peers[f[0]] = f[1:]
	}
	return peers
}

func mustExec(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := netcluster.Exec(ns, args...)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out
}

func describe(n *netcluster.Node) string { return fmt.Sprintf("%s (%s)", n.Name, n.NS) }
