package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// heartbeater writes the status updates kubelets and node-problem-detector
// send in a steady cluster, at a rate across all fake nodes: new
// lastHeartbeatTime on their conditions and, on one kubelet update in
// imageChangeEvery, a new image list. None of it is anything crosswire
// reads (annotations, pod CIDRs, InternalIP), so the agent's datapath must
// not change; what it costs the agent to find that out is the measurement.
//
// Nodes take turns (round robin), kubelet and node-problem-detector
// alternate, so a node's patches are seconds apart and every one changes
// its resourceVersion (the heartbeat times have 1 s resolution).
type heartbeater struct {
	admin kubernetes.Interface
	nodes int     // fake nodes 0..nodes-1
	rate  float64 // patches per second across the cluster

	next    int         // next heartbeat's sequence number
	imgGens map[int]int // fake node -> image generation
}

// imageChangeEvery: one kubelet status update in ten carries a changed
// image list (a pod pulled a new release); the rest only heartbeat times.
const imageChangeEvery = 10

// heartbeatWorkers bounds the patches in flight, so a slow API server
// lowers the achieved rate (reported) instead of piling up requests.
const heartbeatWorkers = 8

func newHeartbeater(admin kubernetes.Interface, nodes int, rate float64) *heartbeater {
	return &heartbeater{admin: admin, nodes: nodes, rate: rate, imgGens: map[int]int{}}
}

// job is one status patch.
type job struct {
	node    int
	manager string
	body    map[string]any
}

// nextJob is the sequence's next patch.
func (h *heartbeater) nextJob(now time.Time) job {
	seq := h.next
	h.next++
	node := (seq / 2) % h.nodes
	if seq%2 == 1 {
		return job{node: node, manager: managerNPD, body: npdPatch(now, true)}
	}
	var images []corev1.ContainerImage
	if (seq/2)%imageChangeEvery == imageChangeEvery-1 {
		h.imgGens[node]++
		images = fakeImages(node, h.imgGens[node])
	}
	return job{node: node, manager: managerKubelet, body: kubeletPatch(now, images)}
}

// run sends count patches (until ctx ends when count is 0) at h.rate and
// returns how many were written once all have answered. Cancelling ctx is
// how an open-ended run ends; it is not an error.
func (h *heartbeater) run(ctx context.Context, count int) (int, error) {
	jobs := make(chan job)
	var (
		mu    sync.Mutex
		done  int
		first error
		wg    sync.WaitGroup
	)
	for range heartbeatWorkers {
		wg.Go(func() {
			for j := range jobs {
				_, err := patch(ctx, h.admin, fakeName(j.node), j.manager, types.StrategicMergePatchType, j.body, "status")
				mu.Lock()
				switch {
				case err == nil:
					done++
				case ctx.Err() == nil && first == nil:
					first = err
				}
				mu.Unlock()
			}
		})
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / h.rate))
	defer tick.Stop()
send:
	for sent := 0; count == 0 || sent < count; sent++ {
		select {
		case <-ctx.Done():
			break send
		case now := <-tick.C:
			select {
			case jobs <- h.nextJob(now):
			case <-ctx.Done():
				break send
			}
		}
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return done, fmt.Errorf("heartbeat: %w", first)
	}
	if count > 0 && ctx.Err() != nil {
		return done, ctx.Err()
	}
	return done, nil
}

// background runs heartbeats until stop is called; stop returns how many
// were written and the first error.
func (h *heartbeater) background(ctx context.Context) (stop func() (int, error)) {
	ctx, cancel := context.WithCancel(ctx)
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := h.run(ctx, 0)
		res <- result{n, err}
	}()
	return func() (int, error) {
		cancel()
		r := <-res
		if errors.Is(r.err, context.Canceled) {
			r.err = nil
		}
		return r.n, r.err
	}
}

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
