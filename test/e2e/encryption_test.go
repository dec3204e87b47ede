package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/test/netcluster"
)

// crossNodeTraffic sends ICMP and TCP from every node's first pod to the
// first pod of every other node (so both directions of every pair), and
// TCP to the Service VIP, failing on any lost reply.
func crossNodeTraffic(t *testing.T, c *netcluster.Cluster) {
	t.Helper()
	servers := map[*netcluster.Pod]netip.AddrPort{}
	for _, n := range c.Nodes {
		p := n.Pods[len(n.Pods)-1]
		addr := netip.AddrPortFrom(p.IP, 9000)
		netcluster.ServeTCP(t, p.NS, addr)
		servers[p] = addr
	}
	for _, a := range c.Nodes {
		for _, b := range c.Nodes {
			if a == b {
				continue
			}
			src, dst := a.Pods[0], b.Pods[len(b.Pods)-1]
			if err := src.Ping(dst.IP, 3); err != nil {
				t.Errorf("ICMP %s -> %s: %v", src.Name, dst.Name, err)
			}
			payload := []byte(fmt.Sprintf("hello from %s to %s", src.Name, dst.Name))
			got, err := netcluster.DialTCP(src.NS, servers[dst], payload, 5*time.Second)
			if err != nil || !bytes.Equal(got, payload) {
				t.Errorf("TCP %s -> %s: %q, %v", src.Name, dst.Name, got, err)
			}
		}
	}
}

func TestPodTrafficAcrossNodesIsEncrypted(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 2})
	c := e.c
	netcluster.ServeTCP(t, c.Backend.NS, c.BackendAddr)

	cap := c.StartCapture(t)
	crossNodeTraffic(t, c)
	// Service VIP from a pod on node1 to the backend on node2: DNAT happens
	// in node1's prerouting before crosswire judges the destination.
	client := c.Nodes[0].Pods[0]
	for i := 0; i < 3; i++ {
		payload := []byte("via service " + strconv.Itoa(i))
		got, err := netcluster.DialTCP(client.NS, c.ServiceVIP, payload, 5*time.Second)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("Service VIP from %s: %q, %v", client.Name, got, err)
		}
	}
	stopEncrypted(t, cap, "all-pairs pod traffic and the Service VIP")

	// The marking rules counted it, and an operator sees them explained.
	for _, n := range c.Nodes {
		if got := markCounters(t, n)[nft.CommentEgress4]; got == 0 {
			t.Errorf("%s: egress mark counter is 0", describe(n))
		}
		if got := markCounters(t, n)[nft.CommentTunnelIngress]; got == 0 {
			t.Errorf("%s: tunnel ingress counter is 0", describe(n))
		}
	}
	ruleset := mustExec(t, c.Nodes[0].NS, "nft", "list", "ruleset")
	for _, want := range []string{`comment "` + nft.CommentEgress4 + `"`, "ip saddr @local4 ip daddr @remote4", "priority dstnat + 10"} {
		if !strings.Contains(ruleset, want) {
			t.Errorf("nft list ruleset lacks %q:\n%s", want, ruleset)
		}
	}

	// wg show lists every peer with a recent handshake and traffic.
	for _, n := range c.Nodes {
		peers := e.wgPeers(t, n)
		if len(peers) != len(c.Nodes)-1 {
			t.Errorf("%s: wg show lists %d peers, want %d", n.Name, len(peers), len(c.Nodes)-1)
		}
		for _, m := range c.Nodes {
			if m == n {
				continue
			}
			f, ok := peers[e.keys[m.Name]]
			if !ok {
				t.Errorf("%s: peer %s missing from wg show", n.Name, m.Name)
				continue
			}
			if age := time.Since(time.Unix(f.LatestHandshake, 0)); f.LatestHandshake == 0 || age > time.Minute {
				t.Errorf("%s: peer %s handshake at %d not recent", n.Name, m.Name, f.LatestHandshake)
			}
			if f.RxBytes == 0 || f.TxBytes == 0 {
				t.Errorf("%s: peer %s moved no bytes: %+v", n.Name, m.Name, f)
			}
			if f.AllowedIPs != m.PodCIDR.String() || f.Endpoint != fmt.Sprintf("%s:%d", m.UnderlayIP, listenPort) {
				t.Errorf("%s: peer %s is %+v", n.Name, m.Name, f)
			}
		}
	}
}

func TestSameNodeAndNodeOriginatedTrafficIsNotMarked(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 2})
	c := e.c
	n1, n2 := c.Nodes[0], c.Nodes[1]

	before := markCounters(t, n1)[nft.CommentEgress4]
	cap := c.StartCapture(t)
	if err := n1.Pods[0].Ping(n1.Pods[1].IP, 5); err != nil {
		t.Fatalf("same-node ping: %v", err)
	}
	addr := netip.AddrPortFrom(n1.Pods[1].IP, 9001)
	netcluster.ServeTCP(t, n1.Pods[1].NS, addr)
	if _, err := netcluster.DialTCP(n1.Pods[0].NS, addr, []byte("local"), 5*time.Second); err != nil {
		t.Fatalf("same-node TCP: %v", err)
	}
	counts, err := cap.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if after := markCounters(t, n1)[nft.CommentEgress4]; after != before {
		t.Errorf("same-node traffic was marked: counter %d -> %d", before, after)
	}
	// Only marked packets enter the tunnel, and the mark counter did not
	// move; WireGuard packets seen meanwhile are the other peers' keepalives
	// and rekeys, so only plaintext is judged here.
	if counts.Plaintext != 0 {
		t.Errorf("same-node traffic reached the underlay in clear: %s %v", counts, counts.PlaintextSamples)
	}

	// Node-originated traffic takes the output path, never prerouting: it
	// is not marked and crosses in clear on the plain host-gw route.
	before = markCounters(t, n1)[nft.CommentEgress4]
	cap = c.StartCapture(t)
	if err := c.Ping(n1.NS, n2.Pods[0].IP, 3); err != nil {
		t.Fatalf("node -> remote pod ping: %v", err)
	}
	counts, err = cap.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if after := markCounters(t, n1)[nft.CommentEgress4]; after != before {
		t.Errorf("node-originated traffic was marked: counter %d -> %d", before, after)
	}
	if counts.Plaintext == 0 {
		t.Errorf("node-originated ping not seen in clear on the underlay (%s): was it tunnelled?", counts)
	}
}
