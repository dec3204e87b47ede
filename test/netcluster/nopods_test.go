package netcluster

import (
	"net/netip"
	"strings"
	"testing"
)

// A NoPods cluster is bare nodes for a real CNI and kube-proxy: underlay,
// default route and strict rp_filter, and nothing of the fake pod network;
// routes to pod CIDRs come later through RoutePodCIDR.
func TestNoPodsNodes(t *testing.T) {
	needRoot(t)
	c := New(t, Options{Nodes: 2, NoPods: true})
	if c.Backend != nil || len(c.Nodes[0].Pods) != 0 {
		t.Fatalf("NoPods cluster has a backend %v or pods %v", c.Backend, c.Nodes[0].Pods)
	}
	if got := len(c.Namespaces()); got != 3 {
		t.Errorf("namespaces: %d, want underlay + 2 nodes: %v", got, c.Namespaces())
	}
	n1, n2 := c.Nodes[0], c.Nodes[1]
	links, err := Exec(n1.NS, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(links, PodBridge) {
		t.Errorf("NoPods node has a pod bridge:\n%s", links)
	}
	routes, err := Exec(n1.NS, "ip", "route", "show")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(routes, "default via 192.168.77.1") || strings.Contains(routes, "10.244.") {
		t.Errorf("routes of a NoPods node: want the unanswered default route and no pod routes:\n%s", routes)
	}
	if rp, err := Exec(n1.NS, "sysctl", "-n", "net.ipv4.conf.all.rp_filter"); err != nil || strings.TrimSpace(rp) != "1" {
		t.Errorf("rp_filter = %q (%v), want 1", rp, err)
	}
	if tables, err := Exec(n1.NS, "nft", "list", "tables"); err != nil || strings.TrimSpace(tables) != "" {
		t.Errorf("NoPods node has nft tables %q (%v); kube-proxy brings its own", tables, err)
	}
	if err := c.RoutePodCIDR(n1, netip.MustParsePrefix("10.244.7.0/24"), n2); err != nil {
		t.Fatal(err)
	}
	routes, _ = Exec(n1.NS, "ip", "route", "show", "10.244.7.0/24")
	if !strings.Contains(routes, "via "+n2.UnderlayIP.String()) {
		t.Errorf("RoutePodCIDR: route %q, want via %s", routes, n2.UnderlayIP)
	}
	added, err := c.AddNodes(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 || len(added[0].Pods) != 0 {
		t.Errorf("AddNodes on a NoPods cluster: %+v", added)
	}
	// A few tries: the first ARP request can go out while the new node's
	// link is still coming up, and ping waits only a second for it.
	var perr error
	for range 5 {
		if perr = Ping(n1.NS, added[0].UnderlayIP, 1); perr == nil {
			break
		}
	}
	if perr != nil {
		t.Errorf("new node unreachable on the underlay for 5 s: %v", perr)
	}
}
