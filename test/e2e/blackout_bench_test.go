package e2e

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/test/netcluster"
)

// BenchmarkRestartBlackout restarts node1's agent (SIGTERM, then a new
// agent at once, as a DaemonSet rollout does) under 20 ms pings both ways
// and an underlay capture. It reports the blackout (the longest stretch
// without replies in either direction, p50 and max over the restarts) and
// the plaintext pod packets seen over the whole run, which must be 0. With
// every node a peer, and with on-demand peers (the restarted agent starts
// with none: the peer's stale-session traffic brings it back).
//
//	go test -run '^$' -bench RestartBlackout -benchtime 10x ./test/e2e/
func BenchmarkRestartBlackout(b *testing.B) {
	b.Run("all-peers", func(b *testing.B) { benchRestartBlackout(b) })
	b.Run("on-demand-peers", func(b *testing.B) { benchRestartBlackout(b, "--on-demand-peers") })
}

func benchRestartBlackout(b *testing.B, agentFlags ...string) {
	e := newEnv(b, netcluster.Options{Nodes: 2, PodsPerNode: 1}, agentFlags...)
	n1, n2 := e.c.Nodes[0], e.c.Nodes[1]
	cap := e.c.StartCapture(b)
	fwd := netcluster.StartPinger(b, "node1->node2", n1.Pods[0].NS, n2.Pods[0].IP)
	rev := netcluster.StartPinger(b, "node2->node1", n2.Pods[0].NS, n1.Pods[0].IP)
	eventually(b, 5*time.Second, "pings flow", func() error {
		if !fwd.RepliedSince(time.Now().Add(-time.Second)) || !rev.RepliedSince(time.Now().Add(-time.Second)) {
			return errString("no replies yet")
		}
		return nil
	})

	type window struct{ from, to time.Time }
	var windows []window
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		time.Sleep(300 * time.Millisecond) // steady traffic between restarts
		w := window{from: time.Now()}
		e.stopAgent(n1, syscall.SIGTERM)
		e.startAgent(n1)
		started := time.Now()
		eventually(b, 20*time.Second, "traffic resumes", func() error {
			if !fwd.RepliedSince(started) || !rev.RepliedSince(started) {
				return errString("no reply since restart")
			}
			return nil
		})
		w.to = time.Now()
		windows = append(windows, w)
	}
	b.StopTimer()
	time.Sleep(300 * time.Millisecond)
	fwd.Stop()
	rev.Stop()
	counts, err := cap.Stop()
	if err != nil {
		b.Fatal(err)
	}
	var gaps []time.Duration
	for _, w := range windows {
		gaps = append(gaps, max(netcluster.LongestGap(fwd.Replies, w.from, w.to), netcluster.LongestGap(rev.Replies, w.from, w.to)))
	}
	slices.Sort(gaps)
	b.ReportMetric(float64(gaps[len(gaps)/2].Milliseconds()), "blackout-p50-ms")
	b.ReportMetric(float64(gaps[len(gaps)-1].Milliseconds()), "blackout-max-ms")
	b.ReportMetric(float64(counts.Plaintext), "plaintext-pkts")
	if counts.Plaintext != 0 {
		b.Errorf("plaintext pod packets during restarts: %s %v", counts, counts.PlaintextSamples)
	}
}
