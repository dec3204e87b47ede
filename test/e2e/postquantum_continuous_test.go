package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/test/netcluster"
)

const (
	// minRotations is how many PSK rotations every pair goes through
	// under traffic.
	minRotations = 10
	// strayLoss is the most probes a flow may lose in a window outside
	// its blackout: rotations must cost nothing, and a restart or re-key
	// only the one blackout of the pairs it touches.
	strayLoss = 3
)

// flow is a continuous ping from one node's pod to another's.
type flow struct {
	from, to *netcluster.Node
	p        *netcluster.Pinger
}

func (f flow) touches(n *netcluster.Node) bool { return f.from == n || f.to == n }

// startFlows pings from every node's first pod to every other node's,
// and waits until every flow is answered.
func startFlows(t *testing.T, c *netcluster.Cluster) []flow {
	t.Helper()
	var flows []flow
	for _, a := range c.Nodes {
		for _, b := range c.Nodes {
			if a != b {
				flows = append(flows, flow{a, b, netcluster.StartPinger(t, a.Name+"->"+b.Name, a.Pods[0].NS, b.Pods[0].IP)})
			}
		}
	}
	eventually(t, 10*time.Second, "every flow answered", func() error { return flowsSince(flows, time.Now().Add(-time.Second)) })
	return flows
}

// flowsSince: every flow has had a reply since t0.
func flowsSince(flows []flow, t0 time.Time) error {
	for _, f := range flows {
		if !f.p.RepliedSince(t0) {
			return fmt.Errorf("%s: no reply since %s", f.p.Name, t0.Format("15:04:05.000"))
		}
	}
	return nil
}

// disruption is one event (restart, re-key) and the window around it.
type disruption struct {
	kind     string
	node     *netcluster.Node
	from, to time.Time
}

// disrupt runs the agent restart and the node re-key of node1 and node2,
// each between steady stretches produced by steady (which returns when
// the stretch may end), and returns their windows: from the signal to
// every flow answered again, plus a margin.
func (e *env) disrupt(t *testing.T, flows []flow, steady func()) []disruption {
	n1, n2 := e.c.Nodes[0], e.c.Nodes[1]
	var ds []disruption
	for _, ev := range []struct {
		kind string
		node *netcluster.Node
	}{{"SIGKILL restart", n1}, {"re-key", n2}} {
		steady()
		// A probe in flight when the agent stops belongs to the blackout.
		d := disruption{kind: ev.kind, node: ev.node, from: time.Now().Add(-10 * netcluster.PingInterval)}
		switch ev.kind {
		case "SIGKILL restart":
			e.stopAgent(ev.node, syscall.SIGKILL)
			e.startAgent(ev.node)
		case "re-key":
			// A new WireGuard key: the agent stops, its key file goes, the
			// new agent creates a new key and the node publishes it (here,
			// in the NodeList every agent reads).
			e.stopAgent(ev.node, syscall.SIGTERM)
			old := e.keys[ev.node.Name]
			if err := os.Remove(filepath.Join(ev.node.StateDir, "private.key")); err != nil {
				t.Fatal(err)
			}
			e.startAgent(ev.node)
			if e.keys[ev.node.Name] = e.pubkey(ev.node); e.keys[ev.node.Name] == old {
				t.Fatal("re-key: the key did not change")
			}
			e.writeNodes(e.c.Nodes)
		}
		started := time.Now()
		eventually(t, 20*time.Second, ev.kind+": every flow answered again", func() error { return flowsSince(flows, started) })
		d.to = time.Now().Add(500 * time.Millisecond)
		ds = append(ds, d)
	}
	steady()
	return ds
}

// blackouts checks and logs the loss of every flow: outside the
// disruptions at most strayLoss probes each; in a disruption's window
// flows not touching its node lose at most strayLoss, flows touching it
// lose one run of probes (the blackout) and at most strayLoss more. It
// returns the longest blackout of each disruption kind.
func blackouts(t *testing.T, what string, flows []flow, start, end time.Time, ds []disruption) map[string]time.Duration {
	t.Helper()
	worst := map[string]time.Duration{}
	for _, f := range flows {
		// Outside the disruptions.
		var lost, run, probes int
		from := start
		for _, d := range append(ds, disruption{from: end, to: end}) {
			l := f.p.LossBetween(from, d.from)
			lost, probes, run = lost+l.Lost, probes+l.Probes, max(run, l.LongestRun)
			from = d.to
		}
		t.Logf("%s %s: steady: %d of %d probes lost, longest run %d", what, f.p.Name, lost, probes, run)
		if lost > strayLoss {
			t.Errorf("%s %s lost %d probes (longest run %d) outside restarts and re-keys", what, f.p.Name, lost, run)
		}
		for _, d := range ds {
			l := f.p.LossBetween(d.from, d.to)
			gap := netcluster.LongestGap(f.p.Replies, d.from, d.to)
			t.Logf("%s %s: %s of %s: %d of %d probes lost, blackout %d probes, longest gap %v",
				what, f.p.Name, d.kind, d.node.Name, l.Lost, l.Probes, l.LongestRun, gap.Round(time.Millisecond))
			stray := l.Lost
			if f.touches(d.node) {
				stray -= l.LongestRun
				worst[d.kind] = max(worst[d.kind], gap)
			}
			if stray > strayLoss {
				t.Errorf("%s %s: %s of %s: %d probes lost besides its blackout of %d", what, f.p.Name, d.kind, d.node.Name, stray, l.LongestRun)
			}
		}
	}
	return worst
}

// epochWatch samples every agent's PSK epochs and counts each pair's
// rotations as each end sees them: an epoch that grows is that many
// rotations; one that falls (the chain started again after a restart or
// a re-key) counts the rotations of the new chain past its first key.
type epochWatch struct {
	e        *env
	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup

	mu        sync.Mutex
	last      map[string]uint64 // "node1/node2": node1's epoch for node2
	rotations map[string]int
	highest   map[string]uint64
}

func (e *env) watchEpochs() *epochWatch {
	w := &epochWatch{e: e, stop: make(chan struct{}), last: map[string]uint64{}, rotations: map[string]int{}, highest: map[string]uint64{}}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		// Rotations come every few seconds; counting epoch differences
		// needs no sample of every epoch.
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			for _, n := range e.c.Nodes {
				w.sample(n)
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// sample reads n's epochs; an agent that does not answer (restarting) is
// skipped.
func (w *epochWatch) sample(n *netcluster.Node) {
	out, err := netcluster.Exec(n.NS, agentBin, "status", "--status-socket", w.e.StatusSocket(n), "-o", "json")
	if err != nil && !strings.HasPrefix(strings.TrimSpace(out), "{") {
		return
	}
	var r agentstatus.Report
	if json.NewDecoder(strings.NewReader(out)).Decode(&r) != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range r.Peers {
		if p.PQ == nil || p.PQ.Epoch == 0 {
			continue
		}
		k, ep := n.Name+"/"+p.Name, p.PQ.Epoch
		if prev, ok := w.last[k]; ok {
			if ep >= prev {
				w.rotations[k] += int(ep - prev)
			} else {
				w.rotations[k] += int(ep - 1)
			}
		}
		w.last[k] = ep
		w.highest[k] = max(w.highest[k], ep)
	}
}

// fewest returns the view with the fewest rotations and its count.
func (w *epochWatch) fewest() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	view, least := "", -1
	for _, a := range w.e.c.Nodes {
		for _, b := range w.e.c.Nodes {
			if a == b {
				continue
			}
			k := a.Name + "/" + b.Name
			if n := w.rotations[k]; least < 0 || n < least {
				view, least = k, n
			}
		}
	}
	return view, least
}

func (w *epochWatch) Stop() {
	w.stopOnce.Do(func() { close(w.stop) })
	w.done.Wait()
}

// TestPostQuantumContinuousTraffic pings every pair of pods, every 20 ms
// both ways, while the PSKs rotate every few seconds (at least
// minRotations times per pair), node1's agent is SIGKILLed and restarted
// and node2 is re-keyed (a new WireGuard key, so a new peer for every
// other node and a new exchange from genesis), under --post-quantum=
// required and an underlay capture of the whole run. Rotations lose
// nothing; a restart or re-key costs the pairs it touches one blackout
// and nothing more, the others nothing; no pod packet crosses in clear.
// The same restart and re-key on a classical cluster first give the
// blackouts to compare with (logged, with the ratio: benchmarks, not
// asserts).
func TestPostQuantumContinuousTraffic(t *testing.T) {
	var classical, pq map[string]time.Duration
	t.Run("classical", func(t *testing.T) {
		e := newEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1})
		flows := startFlows(t, e.c)
		start := time.Now()
		ds := e.disrupt(t, flows, func() { time.Sleep(time.Second) })
		end := time.Now()
		for _, f := range flows {
			f.p.Stop()
		}
		classical = blackouts(t, "classical", flows, start, end, ds)
	})
	t.Run("post-quantum", func(t *testing.T) {
		e := newPQEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1}, "required", nil)
		eventually(t, pqBound, "every pair agrees on a post-quantum key", func() error {
			if _, err := e.allPQ(t); err != nil {
				return err
			}
			return e.pairPSKs(e.c.Nodes)
		})
		cap := e.c.StartCapture(t)
		flows := startFlows(t, e.c)
		watch := e.watchEpochs()
		defer watch.Stop()
		start := time.Now()
		// Steady stretches: a third of the rotations before each event,
		// and after the last until every pair has had its rotations.
		stretch := 0
		ds := e.disrupt(t, flows, func() {
			stretch++
			if stretch < 3 {
				time.Sleep(time.Duration(minRotations/3) * pqRotate)
				return
			}
			eventually(t, time.Duration(minRotations+2)*pqRotate, "every pair rotates its PSK", func() error {
				if view, n := watch.fewest(); n < minRotations {
					return fmt.Errorf("%s: %d rotations", view, n)
				}
				return nil
			})
		})
		end := time.Now()
		watch.Stop()
		for _, f := range flows {
			f.p.Stop()
		}
		stopEncrypted(t, cap, fmt.Sprintf("%v of post-quantum pod traffic across rotations, a restart and a re-key", end.Sub(start).Round(time.Second)))
		for k, n := range watch.rotations {
			t.Logf("%s: %d rotations, highest epoch %d", k, n, watch.highest[k])
		}
		pq = blackouts(t, "post-quantum", flows, start, end, ds)
		// Every pair is back on agreed keys, the re-keyed node's new one
		// included.
		if _, err := e.allPQ(t); err != nil {
			t.Error(err)
		}
		if err := e.pairPSKs(e.c.Nodes); err != nil {
			t.Error(err)
		}
	})
	for kind, b := range pq {
		if c := classical[kind]; c > 0 {
			t.Logf("%s blackout: post-quantum %v, classical %v: %.1f×", kind, b.Round(time.Millisecond), c.Round(time.Millisecond), float64(b)/float64(c))
		}
	}
}
