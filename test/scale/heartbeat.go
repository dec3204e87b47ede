package main

import (
	"context"
	"errors"
	"fmt"
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
