package controller

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/test/apiserver"
)

// TestKubeSourceResumesAfterAPIOutage stops a real kube-apiserver for 30 s
// under a running KubeSource, starts it again and creates a Node as soon as
// it is ready: the Node must reach the source's state within seconds.
// client-go's reflector alone backs off up to 30 s (plus up to 2x jitter)
// between reconnection attempts and took ~50 s here; the source's
// list/watch retries a refused connection at most every second instead.
// The figure is logged (docs/benchmarks.md quotes it); the bound is loose.
func TestKubeSourceResumesAfterAPIOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30 s API outage")
	}
	const (
		outage = 30 * time.Second
		bound  = 10 * time.Second
	)
	srv := apiserver.Start(t, apiserver.Options{})
	c := &realCluster{t: t, admin: srv.Client(t)}
	c.agent = c.admin
	c.create(kubeNode(selfName, withPodCIDRs("10.244.1.0/24"), withIP("192.168.77.11")))
	c.create(kubeNode("node2", withPodCIDRs("10.244.2.0/24"), withIP("192.168.77.12"), withKey(testKey(2))))

	core, logs := observer.New(zapcore.InfoLevel)
	src := &KubeSource{Client: c.agent, Self: selfName, SelfKey: pubKey(1), ListenPort: kubePort, Log: zap.New(core)}
	updates := make(chan State, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, Materialize(func(st State) { updates <- st })) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitState(t, updates, "initial peers", func(st State) bool { return len(st.Peers) == 1 })

	down := time.Now()
	srv.StopAPIServer(t)
	time.Sleep(outage)
	srv.StartAPIServer(t) // returns once /readyz answers
	up := time.Now()
	c.create(kubeNode("node3", withPodCIDRs("10.244.3.0/24"), withIP("192.168.77.13"), withKey(testKey(3))))
	created := time.Now()

	deadline := time.After(2 * time.Minute)
	for applied := false; !applied; {
		select {
		case st := <-updates:
			applied = slices.ContainsFunc(st.Peers, func(p proxy.Peer) bool { return p.Name == "node3" })
		case <-deadline:
			t.Fatalf("node3, created after a %v outage, not in the state 2 min later", outage)
		}
	}
	took := time.Since(up)
	t.Logf("API server down %v; node3 created %v after it was ready, in the state %v after ready",
		up.Sub(down).Round(time.Millisecond), created.Sub(up).Round(time.Millisecond), took.Round(time.Millisecond))
	if took > bound {
		t.Errorf("the Node watch resumed %v after the API server was ready; want within %v", took.Round(time.Millisecond), bound)
	}
	// The outage was reported, and its end, without a warning per attempt.
	warn := logs.FilterMessageSnippet("unreachable").Len()
	if warn == 0 || warn > 3 {
		t.Errorf("%d unreachable warnings over a %v outage; want 1-2 (one at start, one per 30 s)", warn, outage)
	}
	if logs.FilterMessageSnippet("resumed").Len() == 0 {
		t.Error("no log line when the list/watch resumed")
	}
}
