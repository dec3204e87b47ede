package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
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
