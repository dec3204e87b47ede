package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/pqpsk"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

const (
	pqRotate = 5 * time.Second
	pqBound  = 2 * pqRotate // docs/post-quantum.md: fail closed after 2 × rotate
)

// newPQEnv is newEnv with a short post-quantum rotation, every Node
// publishing its exchange port; mode is the default --post-quantum, and
// adjust, if set, changes the cluster before the agents start.
func newPQEnv(t *testing.T, o netcluster.Options, mode string, adjust func(*cwcluster.Cluster), extra ...string) *env {
	t.Helper()
	c := netcluster.New(t, o)
	cw := cwcluster.New(c, agentBin, resync, append([]string{"--post-quantum=" + mode, "--pq-rotate=" + pqRotate.String(),
		fmt.Sprintf("--pq-port=%d", pqpsk.DefaultPort)}, extra...)...)
	cw.PQPort = pqpsk.DefaultPort
	if adjust != nil {
		adjust(cw)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range cw.Agents {
				t.Logf("agent log of %s:\n%s", name, tail(p.Log(), 60))
			}
		}
	})
	if _, err := cw.StartAgents(); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, Cluster: cw, c: c, keys: cw.Keys, agents: cw.Agents, nodesFile: cw.NodesFile}
	if err := e.WaitConverged(); err != nil {
		t.Fatal(err)
	}
	return e
}

// pqStatus returns n's post-quantum state of each peer, by node name.
// An agent that is not serving yet (just restarted) is an error.
func (e *env) pqStatus(t *testing.T, n *netcluster.Node) (map[string]agentstatus.PeerPQ, error) {
	t.Helper()
	out, _ := e.crosswireStatus(t, n, "-o", "json")
	var r agentstatus.Report
	// The report comes first; an unhealthy node's reasons follow it.
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&r); err != nil {
		return nil, fmt.Errorf("status of %s: %v: %s", n.Name, err, out)
	}
	m := map[string]agentstatus.PeerPQ{}
	for _, p := range r.Peers {
		if p.PQ != nil {
			m[p.Name] = *p.PQ
		}
	}
	return m, nil
}

// pqState is one peer's state as n sees it, failing the test if n's
// agent does not answer.
func (e *env) pqState(t *testing.T, n, peer *netcluster.Node) agentstatus.PeerPQ {
	t.Helper()
	st, err := e.pqStatus(t, n)
	if err != nil {
		t.Fatal(err)
	}
	return st[peer.Name]
}

// pairPSKs checks with wg(8) that every pair holds one preshared key,
// never none, and returns them by "a/b".
func (e *env) pairPSKs(nodes []*netcluster.Node) error {
	psk := map[string]string{}
	for _, a := range nodes {
		peers, err := e.WGPeers(a)
		if err != nil {
			return err
		}
		for _, b := range nodes {
			if a == b {
				continue
			}
			p, ok := peers[e.keys[b.Name]]
			if !ok {
				return fmt.Errorf("%s has no peer %s", a.Name, b.Name)
			}
			if p.PresharedKey == "(none)" || p.PresharedKey == "" {
				return fmt.Errorf("%s's peer %s has no preshared key: classical WireGuard", a.Name, b.Name)
			}
			psk[a.Name+"/"+b.Name] = p.PresharedKey
		}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b && psk[a.Name+"/"+b.Name] != psk[b.Name+"/"+a.Name] {
				return fmt.Errorf("%s and %s hold different preshared keys", a.Name, b.Name)
			}
		}
	}
	return nil
}

// allPQ: every peer of every node is in state pq.
func (e *env) allPQ(t *testing.T) (map[string]uint64, error) {
	epochs := map[string]uint64{}
	for _, n := range e.c.Nodes {
		st, err := e.pqStatus(t, n)
		if err != nil {
			return nil, err
		}
		if len(st) != len(e.c.Nodes)-1 {
			return nil, fmt.Errorf("%s: post-quantum state of %d peers, want %d", n.Name, len(st), len(e.c.Nodes)-1)
		}
		for peer, s := range st {
			if s.State != string(pqpsk.StatePQ) {
				return nil, fmt.Errorf("%s: peer %s is %s (%s)", n.Name, peer, s.State, s.Reason)
			}
			epochs[n.Name+"/"+peer] = s.Epoch
		}
	}
	return epochs, nil
}

func TestPostQuantum(t *testing.T) {
	e := newPQEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1}, "required", nil)
	c := e.c
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	eventually(t, pqBound, "every pair agrees on a post-quantum key", func() error {
		if _, err := e.allPQ(t); err != nil {
			return err
		}
		return e.pairPSKs(c.Nodes)
	})

	t.Run("encrypted", func(t *testing.T) {
		cap := c.StartCapture(t)
		crossNodeTraffic(t, c)
		stopEncrypted(t, cap, "pod traffic with post-quantum keys")
	})

	t.Run("rotation", func(t *testing.T) {
		// Within one interval (plus the exchange and a tick) every peer's
		// epoch moves on, on both sides alike.
		start := time.Now()
		epochs, err := e.allPQ(t)
		if err != nil {
			t.Fatal(err)
		}
		e.epochsAdvance(t, epochs)
		t.Logf("every epoch advanced within %v (rotation %v)", time.Since(start).Round(100*time.Millisecond), pqRotate)
		if err := e.pairPSKs(c.Nodes); err != nil {
			t.Fatal(err)
		}
		cap := c.StartCapture(t)
		crossNodeTraffic(t, c)
		stopEncrypted(t, cap, "pod traffic after rotations")
	})

	t.Run("SIGKILL restart", func(t *testing.T) {
		cap := c.StartCapture(t)
		e.stopAgent(n1, syscall.SIGKILL)
		e.startAgent(n1)
		start := time.Now()
		eventually(t, 15*time.Second, "the restarted agent agrees again", func() error {
			if _, err := e.allPQ(t); err != nil {
				return err
			}
			if err := e.pairPSKs(c.Nodes); err != nil {
				return err
			}
			return n1.Pods[0].Ping(n2.Pods[0].IP, 1)
		})
		t.Logf("restarted agent back with post-quantum keys after %v", time.Since(start).Round(100*time.Millisecond))
		crossNodeTraffic(t, c)
		stopEncrypted(t, cap, "a SIGKILL restart under post-quantum")
	})

	t.Run("exchange blocked fails closed for that pair only", func(t *testing.T) {
		// Drop the key exchange between node1 and node2 (both directions,
		// in node1's namespace); WireGuard itself is untouched.
		rules := fmt.Sprintf(`table inet cwpqtest {
	chain in { type filter hook input priority -10; ip saddr %s udp dport %d drop; }
	chain out { type filter hook output priority -10; ip daddr %s udp dport %d drop; }
}`, n2.UnderlayIP, pqpsk.DefaultPort, n2.UnderlayIP, pqpsk.DefaultPort)
		if out, err := netcluster.ExecInput(n1.NS, []byte(rules), "nft", "-f", "-"); err != nil {
			t.Fatalf("nft: %v\n%s", err, out)
		}
		dropped := true
		unblock := func() {
			if dropped {
				mustExec(t, n1.NS, "nft", "delete", "table", "inet", "cwpqtest")
				dropped = false
			}
		}
		t.Cleanup(unblock)
		blocked := time.Now()

		cap := c.StartCapture(t)
		// Before the bound the pair still works on its last key.
		eventually(t, 3*time.Second, "the pair, before the bound", func() error {
			return n1.Pods[0].Ping(n2.Pods[0].IP, 1)
		})
		eventually(t, pqBound+5*time.Second, "node1 and node2 fail closed", func() error {
			for _, pair := range [][2]*netcluster.Node{{n1, n2}, {n2, n1}} {
				st, err := e.pqStatus(t, pair[0])
				if err != nil {
					return err
				}
				if s := st[pair[1].Name]; s.State != string(pqpsk.StateClosed) {
					return fmt.Errorf("%s: peer %s is %s", pair[0].Name, pair[1].Name, s.State)
				}
			}
			return nil
		})
		closedAfter := time.Since(blocked)
		t.Logf("pair failed closed %v after its exchange was blocked (bound %v after the last agreement)", closedAfter.Round(100*time.Millisecond), pqBound)
		// Traffic to that peer stops; the others are fine.
		for _, try := range [][2]*netcluster.Node{{n1, n2}, {n2, n1}} {
			if err := try[0].Pods[0].Ping(try[1].Pods[0].IP, 2); err == nil {
				t.Errorf("%s reaches %s after failing closed", try[0].Name, try[1].Name)
			}
		}
		for _, ok := range [][2]*netcluster.Node{{n1, n3}, {n3, n1}, {n2, n3}, {n3, n2}} {
			if err := ok[0].Pods[0].Ping(ok[1].Pods[0].IP, 2); err != nil {
				t.Errorf("%s → %s: %v", ok[0].Name, ok[1].Name, err)
			}
			if s := e.pqState(t, ok[0], ok[1]); s.State != string(pqpsk.StatePQ) {
				t.Errorf("%s: peer %s is %s", ok[0].Name, ok[1].Name, s.State)
			}
		}
		// It is visible: status exit code, problem line, metric.
		out, code := e.crosswireStatus(t, n1)
		if code != 1 || !strings.Contains(out, "peer "+n2.Name+": post-quantum closed") {
			t.Errorf("crosswire status on node1 (exit %d) does not report the closed peer:\n%s", code, out)
		}
		if _, body := agentHTTP(t, n1, "/metrics"); metric(t, body, `crosswire_pq_peers{state="closed"}`) != 1 {
			t.Errorf("crosswire_pq_peers{state=\"closed\"} on node1 is not 1")
		}
		counts, err := cap.Stop()
		if err != nil {
			t.Fatal(err)
		}
		if counts.Plaintext != 0 {
			t.Fatalf("plaintext while the pair was failing closed: %s %v", counts, counts.PlaintextSamples)
		}

		// The path comes back: so does the pair.
		unblock()
		eventually(t, 15*time.Second, "the pair recovers", func() error {
			if _, err := e.allPQ(t); err != nil {
				return err
			}
			return n1.Pods[0].Ping(n2.Pods[0].IP, 1)
		})
	})
}

// TestPostQuantumIPv6Underlay: the nodes reach each other over IPv6 only,
// so the key exchange and WireGuard both run over IPv6, on links of the
// smallest MTU IPv6 allows (1280), which the exchange's Init (1332 bytes
// on the wire) exceeds: the sending kernel fragments it. Every pair
// agrees, every epoch advances, and pod traffic of both families, small
// and large (tunnelled, larger than the underlay MTU), captured on the
// underlay across a rotation, is encrypted; the capture sees the
// exchange's datagrams, all of it over IPv6, nothing over IPv4.
func TestPostQuantumIPv6Underlay(t *testing.T) {
	e := newPQEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1, Pods: netcluster.DualStack, Underlay: netcluster.IPv6, UnderlayMTU: 1280}, "required", nil)
	c := e.c
	eventually(t, pqBound, "every pair agrees on a post-quantum key", func() error {
		if _, err := e.allPQ(t); err != nil {
			return err
		}
		return e.pairPSKs(c.Nodes)
	})
	// Every pair, both families, small and large, all at once.
	pings := func() {
		t.Helper()
		var wg sync.WaitGroup
		for _, a := range c.Nodes {
			for _, b := range c.Nodes {
				if a == b {
					continue
				}
				for _, ip := range b.Pods[0].IPs() {
					for _, size := range []int{56, 1200} {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if err := netcluster.PingSize(a.Pods[0].NS, ip, 3, size); err != nil {
								t.Errorf("%s -> %s, %d bytes: %v", a.Name, ip, size, err)
							}
						}()
					}
				}
			}
		}
		wg.Wait()
	}
	cap := c.StartCapture(t)
	epochs, err := e.allPQ(t)
	if err != nil {
		t.Fatal(err)
	}
	pings()
	e.epochsAdvance(t, epochs)
	if err := e.pairPSKs(c.Nodes); err != nil {
		t.Fatal(err)
	}
	pings()
	counts := stopEncrypted(t, cap, "pod traffic of both families over an IPv6 underlay, across a rotation")
	t.Logf("underlay: IPv4 %d %v, IPv6 %d packets; UDP by destination port %v", counts.IPv4, counts.IPv4Samples, counts.IPv6, counts.UDPDst)
	// The claim is that the tunnel and the key exchange run over IPv6; an
	// IPv4 packet of some other kind (seen once in a CI rehearsal, not
	// recorded then) is logged above, not a failure.
	for _, port := range []uint16{51820, pqpsk.DefaultPort} {
		if n := counts.UDPDst4[port]; n != 0 {
			t.Errorf("%d IPv4 datagrams to UDP port %d on an IPv6-only underlay: %v", n, port, counts.IPv4Samples)
		}
	}
	if counts.UDPDst[pqpsk.DefaultPort] == 0 {
		t.Errorf("no key exchange datagram (UDP port %d) on the underlay during a rotation", pqpsk.DefaultPort)
	}
	for _, n := range c.Nodes {
		for _, o := range c.Nodes {
			if o == n {
				continue
			}
			f := e.wgPeers(t, n)[e.keys[o.Name]]
			if want := netip.AddrPortFrom(o.UnderlayIP6, listenPort).String(); f.Endpoint != want {
				t.Errorf("%s: peer %s endpoint %q, want %s", n.Name, o.Name, f.Endpoint, want)
			}
		}
	}
}

// epochsAdvance waits, within one rotation and a margin, until every
// peer's PSK epoch on every node has moved past epochs (from allPQ).
func (e *env) epochsAdvance(t *testing.T, epochs map[string]uint64) {
	t.Helper()
	eventually(t, pqRotate+3*time.Second, "every epoch advances", func() error {
		now, err := e.allPQ(t)
		if err != nil {
			return err
		}
		for k, ep := range now {
			if ep <= epochs[k] {
				return fmt.Errorf("%s still at epoch %d", k, ep)
			}
		}
		return nil
	})
}
