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
	t, err := p.logTimes(msgSynced, msgAdopted)
	if err != nil {
		return err
	}
	if t[msgSynced].IsZero() || t[msgAdopted].IsZero() {
		return fmt.Errorf("agent log lacks %q or %q", msgSynced, msgAdopted)
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

// eventRun times Node updates to applied, one at a time. Each moves an
// extra pod CIDR of one of the first few Nodes to a new one, so every timed
// event costs the agent the same at every size: one prefix added (route,
// peer, set element) and one removed.
type eventRun struct {
	cfg   Config
	e     *env
	p     *probe
	nodes int // the Nodes the events go to
	next  int // the next event's number (and extra CIDR)
}

// update makes the next event and returns how long until the agent
// committed its set element.
func (r *eventRun) update(ctx context.Context, watch *elementWatch) (time.Duration, error) {
	k := r.next
	r.next++
	extra := eventCIDR(k)
	start := time.Now()
	if err := setExtraCIDR(ctx, r.e.admin, k%r.nodes, extra); err != nil {
		return 0, err
	}
	at, err := watch.wait(extra.Addr(), 10*time.Second)
	if err != nil {
		return 0, fmt.Errorf("event %d: %w", k, err)
	}
	return at.Sub(start), nil
}

// warmUp is an untimed first round that gives the event Nodes their first
// extra CIDR.
func (r *eventRun) warmUp(ctx context.Context) error {
	watch, err := r.p.watchElements()
	if err != nil {
		return err
	}
	defer watch.close()
	for range r.nodes {
		if _, err := r.update(ctx, watch); err != nil {
			return err
		}
	}
	return nil
}

// timed runs cfg.Events events and returns their latencies, sorted.
func (r *eventRun) timed(ctx context.Context, w io.Writer) ([]time.Duration, error) {
	watch, err := r.p.watchElements()
	if err != nil {
		return nil, err
	}
	defer watch.close()
	var lat []time.Duration
	for range r.cfg.Events {
		d, err := r.update(ctx, watch)
		if err != nil {
			return nil, err
		}
		lat = append(lat, d)
		if len(lat)%50 == 0 || len(lat) == r.cfg.Events {
			fmt.Fprintf(w, "  %d/%d events, last %.1f ms\n", len(lat), r.cfg.Events, ms(d))
		}
	}
	slices.Sort(lat)
	return lat, nil
}

// percentiles are p50, p99 and max of sorted latencies, in ms.
func percentiles(lat []time.Duration) (p50, p99, maxMs float64) {
	if len(lat) == 0 {
		return 0, 0, 0
	}
	return ms(lat[len(lat)/2]), ms(lat[(len(lat)*99)/100]), ms(lat[len(lat)-1])
}

// measureEvents times cfg.Events Node updates on a quiet cluster, with the
// agent's apply cost from its metrics.
func measureEvents(ctx context.Context, r *eventRun, n int, res *SizeResult, w io.Writer) error {
	cfg, e, p := r.cfg, r.e, r.p
	before, err := p.metrics(ctx)
	if err != nil {
		return err
	}
	var prof *profiler
	waitCPU := func() error { return nil }
	if cfg.Profile {
		prof = newProfiler(e.cw.StatusSocket(e.node), cfg.Out)
		// Long enough for the event run on a loaded machine; the profile
		// covers its start.
		waitCPU = prof.cpu(ctx, 10*time.Second, fmt.Sprintf("scale-%d-%s-cpu.pprof", n, res.Peers))
	}
	lat, err := r.timed(ctx, w)
	if err != nil {
		return err
	}
	if err := waitCPU(); err != nil {
		return err
	}
	if prof != nil {
		if err := prof.save(ctx, "heap", fmt.Sprintf("scale-%d-%s-heap.pprof", n, res.Peers)); err != nil {
			return err
		}
	}
	res.Events = len(lat)
	res.EventP50Ms, res.EventP99Ms, res.EventMaxMs = percentiles(lat)
	after, err := p.metrics(ctx)
	if err != nil {
		return err
	}
	const sum = "crosswire_reconcile_duration_seconds_sum"
	if applies := after[applyCount] - before[applyCount]; applies > 0 {
		res.Applies = int(applies)
		res.ApplyMeanMs = (after[sum] - before[sum]) / applies * 1000
	}
	if res.RSSAfterEventsMiB, err = p.rssMiB(); err != nil {
		return err
	}
	fmt.Fprintf(w, "  Node update -> applied: p50 %.1f ms, p99 %.1f ms, max %.1f ms; agent apply mean %.2f ms over %d applies; RSS %.1f MiB\n",
		res.EventP50Ms, res.EventP99Ms, res.EventMaxMs, res.ApplyMeanMs, res.Applies, res.RSSAfterEventsMiB)
	return nil
}

// applyCount is the agent's count of datapath applies (every kind).
const applyCount = "crosswire_reconcile_duration_seconds_count"

// measureHeartbeats measures the agent's idle CPU over a window as long as
// the heartbeat run will take, then cfg.Heartbeats status updates: the
// agent's CPU per heartbeat above idle, its datapath applies (none are
// needed: nothing it reads changes) and its RSS after.
func measureHeartbeats(ctx context.Context, cfg Config, e *env, p *probe, hb *heartbeater, n int, res *SizeResult, w io.Writer) error {
	count := cfg.heartbeatCount(hb.rate)
	window := time.Duration(float64(count) / hb.rate * float64(time.Second))
	res.HeartbeatRate = hb.rate
	res.LoadAtHeartbeats = loadavg()
	fmt.Fprintf(w, "  idle for %v (load %s), then %d heartbeats at %.0f/s\n", window.Round(time.Second), res.LoadAtHeartbeats, count, hb.rate)
	idle0, err := p.cpuSeconds()
	if err != nil {
		return err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	idle1, err := p.cpuSeconds()
	if err != nil {
		return err
	}
	idleSeconds := time.Since(t0).Seconds()
	res.IdleCPUms = (idle1 - idle0) * 1000

	before, err := p.metrics(ctx)
	if err != nil {
		return err
	}
	waitCPU := func() error { return nil }
	if cfg.Profile {
		prof := newProfiler(e.cw.StatusSocket(e.node), cfg.Out)
		waitCPU = prof.cpu(ctx, window, fmt.Sprintf("scale-%d-%s-heartbeat-cpu.pprof", n, res.Peers))
	}
	cpu0, err := p.cpuSeconds()
	if err != nil {
		return err
	}
	t1 := time.Now()
	done, err := hb.run(ctx, count)
	if err != nil {
		return err
	}
	cpu1, err := p.cpuSeconds()
	if err != nil {
		return err
	}
	res.HeartbeatSeconds = time.Since(t1).Seconds()
	res.Heartbeats = done
	res.HeartbeatCPUms = (cpu1 - cpu0) * 1000
	// Idle CPU scaled to the heartbeat window's actual length.
	above := res.HeartbeatCPUms - res.IdleCPUms*res.HeartbeatSeconds/idleSeconds
	if done > 0 {
		res.CPUPerHeartbeatMs = above / float64(done)
	}
	if err := waitCPU(); err != nil {
		return err
	}
	after, err := p.metrics(ctx)
	if err != nil {
		return err
	}
	res.AppliesDuringHeartbeats = int(after[applyCount] - before[applyCount])
	if res.RSSAfterHeartbeatsMiB, err = p.rssMiB(); err != nil {
		return err
	}
	fmt.Fprintf(w, "  %d heartbeats in %.1f s: agent CPU %.0f ms (idle %.0f ms over %.1f s), %.2f ms per heartbeat; %d datapath applies; RSS %.1f MiB\n",
		done, res.HeartbeatSeconds, res.HeartbeatCPUms, res.IdleCPUms, idleSeconds, res.CPUPerHeartbeatMs, res.AppliesDuringHeartbeats, res.RSSAfterHeartbeatsMiB)
	return nil
}

// measureLoadedEvents times cfg.Events Node updates while the heartbeats
// go on, as Node events arrive in a real cluster.
func measureLoadedEvents(ctx context.Context, r *eventRun, hb *heartbeater, res *SizeResult, w io.Writer) error {
	stop := hb.background(ctx)
	lat, err := r.timed(ctx, w)
	beats, hbErr := stop()
	if err = errors.Join(err, hbErr); err != nil {
		return err
	}
	res.LoadedEvents = len(lat)
	res.LoadedEventP50Ms, res.LoadedEventP99Ms, res.LoadedEventMaxMs = percentiles(lat)
	fmt.Fprintf(w, "  Node update -> applied during %d heartbeats: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		beats, res.LoadedEventP50Ms, res.LoadedEventP99Ms, res.LoadedEventMaxMs)
	return nil
}

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
