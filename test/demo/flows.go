package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

type flowResult struct {
	name, expect, verdict string
	counts                netcluster.Counts
	marked                uint64
	ok                    bool
}

type flow struct {
	name   string
	from   *netcluster.Node // whose mark counter to read
	expect string           // encrypted, local, plaintext
	send   func() error
}

func runFlows(cw *cwcluster.Cluster) ([]flowResult, error) {
	c := cw.Cluster
	n1, n2 := c.Nodes[0], c.Nodes[1]
	p11, p12, p21 := n1.Pods[0], n1.Pods[1], n2.Pods[0]
	echo := netip.AddrPortFrom(p21.IP, 9000)
	srv, err := netcluster.OpenEchoServer(p21.NS, echo)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	backend, err := netcluster.OpenEchoServer(c.Backend.NS, c.BackendAddr)
	if err != nil {
		return nil, err
	}
	defer backend.Close()

	flows := []flow{
		{fmt.Sprintf("%s -> %s (ICMP+TCP, across nodes)", p11.Name, p21.Name), n1, "encrypted", func() error {
			return both(p11.Ping(p21.IP, 3), tcp(p11.NS, echo))
		}},
		{fmt.Sprintf("%s -> %s (ICMP, reverse direction)", p21.Name, p11.Name), n2, "encrypted", func() error {
			return p21.Ping(p11.IP, 3)
		}},
		{fmt.Sprintf("%s -> Service %s (backend %s)", p11.Name, c.ServiceVIP, c.Backend.Name), n1, "encrypted", func() error {
			return tcp(p11.NS, c.ServiceVIP)
		}},
		{fmt.Sprintf("%s -> %s (same node)", p11.Name, p12.Name), n1, "local", func() error {
			return p11.Ping(p12.IP, 3)
		}},
		{fmt.Sprintf("%s host -> %s (node-originated)", n1.Name, p21.Name), n1, "plaintext", func() error {
			return c.Ping(n1.NS, p21.IP, 3)
		}},
	}
	var out []flowResult
	for _, f := range flows {
		r, err := measure(cw, f)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func both(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func tcp(ns string, addr netip.AddrPort) error {
	payload := []byte("crosswire demo")
	got, err := netcluster.DialTCP(ns, addr, payload, 5*time.Second)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echo mismatch: %q", got)
	}
	return nil
}

// measure runs one flow under an underlay capture and reads the sender
// node's mark counter around it.
func measure(cw *cwcluster.Cluster, f flow) (flowResult, error) {
	r := flowResult{name: f.name, expect: f.expect}
	before, err := cwcluster.MarkCounters(f.from)
	if err != nil {
		return r, err
	}
	cp, err := cw.OpenCapture()
	if err != nil {
		return r, err
	}
	sendErr := f.send()
	r.counts, err = cp.Stop()
	if err != nil {
		return r, err
	}
	after, err := cwcluster.MarkCounters(f.from)
	if err != nil {
		return r, err
	}
	r.marked = after[nft.CommentEgress4] - before[nft.CommentEgress4]
	switch {
	case sendErr != nil:
		r.verdict = "FAILED: " + sendErr.Error()
	case f.expect == "encrypted" && r.counts.Plaintext == 0 && r.counts.WireGuard > 0 && r.marked > 0:
		r.verdict, r.ok = "ENCRYPTED", true
	case f.expect == "local" && r.counts.Plaintext == 0 && r.counts.WireGuard == 0 && r.marked == 0:
		r.verdict, r.ok = "LOCAL, not marked", true
	case f.expect == "plaintext" && r.counts.Plaintext > 0 && r.marked == 0:
		r.verdict, r.ok = "CLEAR by design", true
	default:
		r.verdict = "UNEXPECTED (wanted " + f.expect + ")"
	}
	return r, nil
}

func printFlows(rs []flowResult) {
	fmt.Printf("%-60s %-20s %s\n", "FLOW", "RESULT", "EVIDENCE (underlay capture; node mark counter)")
	for _, r := range rs {
		fmt.Printf("%-60s %-20s plaintext %d, wireguard %d; marked +%d\n",
			r.name, r.verdict, r.counts.Plaintext, r.counts.WireGuard, r.marked)
	}
}
