package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/test/netcluster"
)

// podTraffic pings and echoes over TCP from the first pod of every node to
// the last pod of every other node, on the address pick chooses.
func podTraffic(t *testing.T, c *netcluster.Cluster, port uint16, pick func(*netcluster.Pod) netip.Addr) {
	t.Helper()
	for _, a := range c.Nodes {
		for _, b := range c.Nodes {
			if a == b {
				continue
			}
			src, dst := a.Pods[0], b.Pods[len(b.Pods)-1]
			if err := src.Ping(pick(dst), 3); err != nil {
				t.Errorf("ping %s -> %s: %v", src.Name, pick(dst), err)
			}
			addr := netip.AddrPortFrom(pick(dst), port)
			netcluster.ServeTCP(t, dst.NS, addr)
			port++
			payload := bytes.Repeat([]byte(fmt.Sprintf("%s->%s ", src.Name, dst.Name)), 500) // several full segments
			if got, err := netcluster.DialTCP(src.NS, addr, payload, 5*time.Second); err != nil || !bytes.Equal(got, payload) {
				t.Errorf("TCP %s -> %s: %d bytes, %v", src.Name, addr, len(got), err)
			}
		}
	}
}

// encryptedPodTraffic runs podTraffic for each address family picked, under
// an underlay capture, and fails on any plaintext pod packet or when
// nothing went through WireGuard.
func encryptedPodTraffic(t *testing.T, c *netcluster.Cluster, port uint16, picks ...func(*netcluster.Pod) netip.Addr) {
	t.Helper()
	cp := c.StartCapture(t)
	for i, pick := range picks {
		podTraffic(t, c, port+uint16(100*i), pick)
	}
	stopEncrypted(t, cp, "pod traffic of every family")
}

func ip6(p *netcluster.Pod) netip.Addr { return p.IP6 }
func ip4(p *netcluster.Pod) netip.Addr { return p.IP }

func TestDualStackPodTrafficIsEncrypted(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 2, Pods: netcluster.DualStack})
	c := e.c
	encryptedPodTraffic(t, c, 9200, ip6, ip4)
	for _, n := range c.Nodes {
		m := markCounters(t, n)
		t.Logf("%s: egress4 %d egress6 %d clamp4 %d clamp6 %d", n.Name, m[nft.CommentEgress4], m[nft.CommentEgress6], m[nft.CommentMSSClamp4], m[nft.CommentMSSClamp6])
		for _, k := range []string{nft.CommentEgress4, nft.CommentEgress6, nft.CommentMSSClamp4, nft.CommentMSSClamp6} {
			if m[k] == 0 {
				t.Errorf("%s: counter %q is 0", n.Name, k)
			}
		}
		// Every peer carries both of its node's pod CIDRs.
		for _, o := range c.Nodes {
			if o == n {
				continue
			}
			f := e.wgPeers(t, n)[e.keys[o.Name]]
			if !strings.Contains(f.AllowedIPs, o.PodCIDR.String()) || !strings.Contains(f.AllowedIPs, o.PodCIDR6.String()) {
				t.Errorf("%s: peer %s allowed IPs %q", n.Name, o.Name, f.AllowedIPs)
			}
		}
	}

	// Same-node IPv6 stays off the tunnel: not marked, not on the underlay.
	n1 := c.Nodes[0]
	before := markCounters(t, n1)[nft.CommentEgress6]
	cp := c.StartCapture(t)
	if err := n1.Pods[0].Ping(n1.Pods[1].IP6, 3); err != nil {
		t.Fatalf("same-node ping -6: %v", err)
	}
	addr := netip.AddrPortFrom(n1.Pods[1].IP6, 9400)
	netcluster.ServeTCP(t, n1.Pods[1].NS, addr)
	if _, err := netcluster.DialTCP(n1.Pods[0].NS, addr, []byte("local6"), 5*time.Second); err != nil {
		t.Fatalf("same-node TCP over IPv6: %v", err)
	}
	counts, err := cp.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if after := markCounters(t, n1)[nft.CommentEgress6]; after != before {
		t.Errorf("same-node IPv6 was marked: counter %d -> %d", before, after)
	}
	// Only marked packets enter the tunnel, and the mark counter did not
	// move; WireGuard packets seen meanwhile are the other peers' keepalives
	// and rekeys, so only plaintext is judged here.
	if counts.Plaintext != 0 {
		t.Errorf("same-node traffic reached the underlay in clear: %s %v", counts, counts.PlaintextSamples)
	}
}

// TestIPv6UnderlayCluster: nodes reach each other over IPv6 only, so the
// WireGuard endpoints are IPv6; both pod families ride the tunnel.
func TestIPv6UnderlayCluster(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1, Pods: netcluster.DualStack, Underlay: netcluster.IPv6})
	c := e.c
	encryptedPodTraffic(t, c, 9500, ip6, ip4)
	for _, n := range c.Nodes {
		for _, o := range c.Nodes {
			if o == n {
				continue
			}
			f := e.wgPeers(t, n)[e.keys[o.Name]]
			if want := netip.AddrPortFrom(o.UnderlayIP6, listenPort).String(); f.Endpoint != want || f.RxBytes == 0 {
				t.Errorf("%s: peer %s endpoint %q rx %d; want %s and traffic", n.Name, o.Name, f.Endpoint, f.RxBytes, want)
			}
		}
	}
}

// TestIPv6OnlyCluster: pods and underlay are IPv6 only (no IPv4 anywhere
// between nodes): pod traffic is encrypted and same-node traffic unmarked.
func TestIPv6OnlyCluster(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 2, Pods: netcluster.IPv6, Underlay: netcluster.IPv6})
	c := e.c
	n1 := c.Nodes[0]
	before := markCounters(t, n1)[nft.CommentEgress6]
	encryptedPodTraffic(t, c, 9700, ip6)
	if after := markCounters(t, n1)[nft.CommentEgress6]; after <= before {
		t.Errorf("IPv6 egress counter did not move: %d -> %d", before, after)
	}
	before = markCounters(t, n1)[nft.CommentEgress6]
	if err := n1.Pods[0].Ping(n1.Pods[1].IP6, 3); err != nil {
		t.Fatalf("same-node IPv6 ping: %v", err)
	}
	if after := markCounters(t, n1)[nft.CommentEgress6]; after != before {
		t.Errorf("same-node IPv6 marked: %d -> %d", before, after)
	}
}
