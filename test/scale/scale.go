package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/crosswire/crosswire/test/cwcluster"
)

// Config is one benchmark run.
type Config struct {
	Sizes []int
	// Modes are the agent's peer modes to measure at every size:
	// ModeAll (every Node a WireGuard peer) and ModeOnDemand
	// (--on-demand-peers).
	Modes     []string
	Events    int           // Node updates timed per size
	Churn     time.Duration // add/delete run per size; 0 skips it
	ChurnRate float64       // adds plus deletes per second
	Sample    time.Duration // RSS and goroutine sampling period during churn
	Bin       string
	ToolsDir  string // kube-apiserver and etcd; default apiserver.DefaultToolsDir()
	Out       string
	// SyncTimeout bounds agent start -> datapath applied.
	SyncTimeout time.Duration
	// Profile saves the agent's CPU profile over the event run and its
	// heap profile after it into Out (scale-<n>-cpu.pprof, -heap.pprof),
	// and a CPU profile of the heartbeat window.
	Profile bool
	// Heartbeats are the status updates timed in the heartbeat window,
	// at most as many as fit in MaxHeartbeatWindow; 0 skips the heartbeat
	// run.
	Heartbeats int
	// MaxHeartbeatWindow bounds the heartbeat window (and so the idle
	// window before it): at 100 Nodes, 1000 heartbeats at the default
	// rate would take 17 minutes.
	MaxHeartbeatWindow time.Duration
	// HeartbeatRate is status updates per second across the cluster; 0
	// means one per node every HeartbeatPeriod.
	HeartbeatRate float64
	// Settle is how long after the sync the heartbeat run waits, with
	// every node a peer, for wireguard-go to give up the start-up
	// handshakes to peers that never answer (90 s), whose CPU would
	// otherwise count as the heartbeats'.
	Settle time.Duration
}

// HeartbeatPeriod is the default interval between status updates of one
// node, kubelet's and node-problem-detector's together. The kubelet
// patches its status when it changes and at least every 5 min
// (nodeStatusReportFrequency; liveness goes through Leases, which
// crosswire does not watch); node-problem-detector heartbeats its
// conditions every 5 min; pods starting and ending change images and
// volumes in between. About one update per node every 100 s, 50/s at
// 5000 nodes. (Kubelets before Leases, or configured so, post every 10 s:
// -heartbeat-rate covers that.)
const HeartbeatPeriod = 100 * time.Second

// heartbeatCount is how many heartbeats the window holds at rate.
func (c Config) heartbeatCount(rate float64) int {
	if c.MaxHeartbeatWindow <= 0 {
		return c.Heartbeats
	}
	return max(1, min(c.Heartbeats, int(rate*c.MaxHeartbeatWindow.Seconds())))
}

// heartbeatRate is the rate for a cluster of n nodes.
func (c Config) heartbeatRate(n int) float64 {
	if c.HeartbeatRate > 0 {
		return c.HeartbeatRate
	}
	return max(1, float64(n)/HeartbeatPeriod.Seconds())
}

func defaultConfig() Config {
	return Config{
		Sizes: []int{100, 1000, 5000}, Modes: []string{ModeAll, ModeOnDemand}, Events: 200, Churn: 60 * time.Second, ChurnRate: 10,
		Sample: 5 * time.Second, SyncTimeout: 5 * time.Minute, Heartbeats: 1000, MaxHeartbeatWindow: 100 * time.Second,
		Settle: 100 * time.Second,
	}
}

// Peer modes of the agent.
const (
	ModeAll      = "all"
	ModeOnDemand = "on-demand"
)

// Run measures every size and mode in turn, each on a fresh API server and
// node namespace, and returns what it measured even when a later one fails.
func Run(ctx context.Context, cfg Config, w io.Writer) (*Report, error) {
	rep := newReport(cfg)
	for _, n := range cfg.Sizes {
		for _, mode := range cfg.Modes {
			fmt.Fprintf(w, "scale: %d nodes, %s peers\n", n, mode)
			r, err := runSize(ctx, cfg, n, mode, w)
			if err != nil {
				return rep, fmt.Errorf("%d nodes, %s peers: %w", n, mode, err)
			}
			rep.Sizes = append(rep.Sizes, r)
		}
	}
	rep.finish()
	return rep, nil
}

func runSize(ctx context.Context, cfg Config, n int, mode string, w io.Writer) (res SizeResult, err error) {
	res.Nodes, res.Peers = n, mode
	step := time.Now()
	e, err := newEnv(ctx, cfg, mode)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			e.tail(w)
		}
		err = errors.Join(err, e.close())
	}()
	res.Cluster = e.c.Prefix
	fmt.Fprintf(w, "  cluster %s and kube-apiserver up in %v\n", e.c.Prefix, time.Since(step).Round(time.Millisecond))

	step = time.Now()
	if err := createFakes(ctx, e.admin, 0, n-1); err != nil {
		return res, err
	}
	res.CreateSeconds = time.Since(step).Seconds()
	fmt.Fprintf(w, "  %d Nodes created in %v\n", n-1, time.Since(step).Round(time.Millisecond))

	if res.NodeBytes, res.NodeManagedFields, err = nodeBytes(ctx, e, 0); err != nil {
		return res, err
	}
	fmt.Fprintf(w, "  a Node is %d bytes as served (JSON), %d managedFields entries\n", res.NodeBytes, res.NodeManagedFields)

	if err := measureSync(ctx, cfg, e, n, mode, &res, w); err != nil {
		return res, err
	}
	synced := time.Now()
	p, err := newProbe(e)
	if err != nil {
		return res, err
	}
	defer p.close()
	ev := &eventRun{cfg: cfg, e: e, p: p, nodes: min(n-1, 50)}
	if err := ev.warmUp(ctx); err != nil {
		return res, err
	}
	if err := measureEvents(ctx, ev, n, &res, w); err != nil {
		return res, err
	}
	if cfg.Heartbeats > 0 {
		if mode == ModeAll {
			if wait := time.Until(synced.Add(cfg.Settle)); wait > 0 {
				fmt.Fprintf(w, "  waiting %v for the start-up handshakes to end\n", wait.Round(time.Second))
				select {
				case <-ctx.Done():
					return res, ctx.Err()
				case <-time.After(wait):
				}
			}
		}
		hb := newHeartbeater(e.admin, n-1, cfg.heartbeatRate(n))
		if err := measureHeartbeats(ctx, cfg, e, p, hb, n, &res, w); err != nil {
			return res, err
		}
		if err := measureLoadedEvents(ctx, ev, hb, &res, w); err != nil {
			return res, err
		}
	}
	if cfg.Churn > 0 {
		if err := measureChurn(ctx, cfg, e, p, n, &res, w); err != nil {
			return res, err
		}
	}
	return res, nil
}

// measureSync starts the agent and waits until remote4 holds every other
// node's prefix and the device every other node's peer (none with
// on-demand peers: nothing has sent traffic yet).
func measureSync(ctx context.Context, cfg Config, e *env, n int, mode string, res *SizeResult, w io.Writer) error {
	p, err := newProbe(e)
	if err != nil {
		return err
	}
	defer p.close()
	want := n - 1
	start := time.Now()
	if err := e.startAgent(); err != nil {
		return err
	}
	deadline := start.Add(cfg.SyncTimeout)
	last := -1
	for {
		got, err := p.remote4()
		if err != nil {
			return err
		}
		if got == want {
			break
		}
		if got != last {
			last = got
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remote4 holds %d prefixes after %v, want %d", last, cfg.SyncTimeout, want)
		}
		if e.agent.Exited() {
			return errors.New("agent exited")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.StartToAppliedMs = ms(time.Since(start))
	peers, err := p.wgPeers()
	if err != nil {
		return err
	}
	wantPeers := want
	if mode == ModeOnDemand {
		wantPeers = 0
	}
	if peers != wantPeers {
		return fmt.Errorf("datapath applied but the device has %d peers, want %d", peers, wantPeers)
	}
	res.WGPeers = peers
	// The sets can be complete a moment before the agent logs its apply:
	// wait for both lines rather than read the log once.
	var t map[string]time.Time
	for logDeadline := time.Now().Add(10 * time.Second); ; {
		if t, err = p.logTimes(msgSynced, msgAdopted); err != nil {
			return err
		}
		if !t[msgSynced].IsZero() && !t[msgAdopted].IsZero() {
			break
		}
		if time.Now().After(logDeadline) {
			return fmt.Errorf("agent log lacks %q or %q", msgSynced, msgAdopted)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	res.SyncedToAppliedMs = ms(t[msgAdopted].Sub(t[msgSynced]))
	res.StartToSyncedMs = ms(t[msgSynced].Sub(start))
	if res.RSSAfterSyncMiB, err = p.rssMiB(); err != nil {
		return err
	}
	fmt.Fprintf(w, "  agent start -> applied %.0f ms (cache synced %.0f ms after start, applied %.0f ms after that); %d peers; RSS %.1f MiB\n",
		res.StartToAppliedMs, res.StartToSyncedMs, res.SyncedToAppliedMs, peers, res.RSSAfterSyncMiB)
	return nil
}

// Agent log messages the sync figures come from.
const (
	msgSynced  = "Node cache synced"
	msgAdopted = "adopted existing datapath" // the first apply after start
)

// measureChurn adds and deletes Nodes at cfg.ChurnRate for cfg.Churn,
// alternating so the count stays near n, sampling the agent's RSS and
// goroutines; then it checks that the agent caught up.
func measureChurn(ctx context.Context, cfg Config, e *env, p *probe, n int, res *SizeResult, w io.Writer) error {
	sample := func() (Sample, error) {
		s := Sample{At: time.Now()}
		var err error
		if s.RSSMiB, err = p.rssMiB(); err != nil {
			return s, err
		}
		m, err := p.metrics(ctx)
		if err != nil {
			return s, err
		}
		s.Goroutines = int(m["go_goroutines"])
		s.HeapMiB = m["go_memstats_heap_inuse_bytes"] / (1 << 20)
		return s, nil
	}
	first, err := sample()
	if err != nil {
		return err
	}
	// Node add -> applied, timed on the churn's adds (create and status
	// update, then the set element).
	watch, err := p.watchElements()
	if err != nil {
		return err
	}
	defer watch.close()
	var adds []time.Duration
	start := first.At
	samples := []Sample{first}
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.ChurnRate))
	defer tick.Stop()
	nextSample := start.Add(cfg.Sample)
	added := n - 1 // next fake index
	oldest := 0    // oldest fake still present
	ops := 0
	for time.Since(start) < cfg.Churn {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if ops%2 == 0 {
			t0 := time.Now()
			if err := createFake(ctx, e.admin, added); err != nil {
				return err
			}
			at, err := watch.wait(fakeCIDR(added).Addr(), 10*time.Second)
			if err != nil {
				return fmt.Errorf("churn: %s: %w", fakeName(added), err)
			}
			adds = append(adds, at.Sub(t0))
			added++
		} else {
			if err := deleteFake(ctx, e.admin, oldest); err != nil {
				return err
			}
			oldest++
		}
		ops++
		if time.Now().After(nextSample) {
			s, err := sample()
			if err != nil {
				return err
			}
			samples = append(samples, s)
			nextSample = nextSample.Add(cfg.Sample)
		}
	}
	caught := time.Now()
	if err := checkFakesPresent(p, oldest, added); err != nil {
		return fmt.Errorf("after churn: %w", err)
	}
	res.ChurnCatchUpMs = ms(time.Since(caught))
	last, err := sample()
	if err != nil {
		return err
	}
	samples = append(samples, last)
	slices.Sort(adds)
	if len(adds) > 0 {
		res.AddP50Ms, res.AddP99Ms = ms(adds[len(adds)/2]), ms(adds[(len(adds)*99)/100])
	}
	res.ChurnOps = ops
	res.ChurnSeconds = time.Since(start).Seconds()
	res.ChurnSamples = samples
	fmt.Fprintf(w, "  Node add -> applied (churn's adds): p50 %.1f ms, p99 %.1f ms\n", res.AddP50Ms, res.AddP99Ms)
	fmt.Fprintf(w, "  churn: %d adds+deletes in %.0f s; RSS %.1f -> %.1f MiB, heap %.1f -> %.1f MiB, goroutines %d -> %d\n",
		ops, res.ChurnSeconds, first.RSSMiB, last.RSSMiB, first.HeapMiB, last.HeapMiB, first.Goroutines, last.Goroutines)
	return nil
}

// checkFakesPresent checks that remote4 holds exactly the pod CIDRs of fake
// nodes from..to-1 (plus event CIDRs, which it ignores).
func checkFakesPresent(p *probe, from, to int) error {
	return cwcluster.Eventually(30*time.Second, func() error {
		set, err := p.conn.GetSetByName(crosswireTable, "remote4")
		if err != nil {
			return err
		}
		elems, err := p.conn.GetSetElements(set)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, el := range elems {
			if !el.IntervalEnd {
				have[fmt.Sprint(el.Key)] = true
			}
		}
		for i := range to {
			a := fakeCIDR(i).Addr().AsSlice()
			if present := have[fmt.Sprint(a)]; present != (i >= from) {
				return fmt.Errorf("%s (%s): present %v", fakeName(i), fakeCIDR(i), present)
			}
		}
		return nil
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
