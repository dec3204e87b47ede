package controller

import (
	"context"
	"fmt"
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
// under a running KubeSource, then three more times for 3 s in quick
// succession (as a chaos run would), and after each restart creates a Node
// as soon as the server is ready: each must reach the source's state
// within seconds. client-go's reflector alone backs off up to 30 s (plus up
// to 2x jitter) between reconnection attempts and took up to ~50 s here;
// the source's list/watch retries a refused connection at most every
// second instead. The figures are logged (docs/benchmarks.md quotes them);
// the bound is loose.
func TestKubeSourceResumesAfterAPIOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30 s API outage and three short ones")
	}
	const bound = 10 * time.Second
	outages := []time.Duration{30 * time.Second, 3 * time.Second, 3 * time.Second, 3 * time.Second}
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

	for i, outage := range outages {
		name := fmt.Sprintf("node%d", 3+i)
		down := time.Now()
		srv.StopAPIServer(t)
		time.Sleep(outage)
		srv.StartAPIServer(t) // returns once /readyz answers
		up := time.Now()
		c.create(kubeNode(name, withPodCIDRs(fmt.Sprintf("10.244.%d.0/24", 3+i)),
			withIP(fmt.Sprintf("192.168.77.%d", 13+i)), withKey(testKey(byte(3+i)))))
		created := time.Now()

		deadline := time.After(2 * time.Minute)
		for applied := false; !applied; {
			select {
			case st := <-updates:
				applied = slices.ContainsFunc(st.Peers, func(p proxy.Peer) bool { return p.Name == name })
			case <-deadline:
				t.Fatalf("%s, created after a %v outage, not in the state 2 min later", name, outage)
			}
		}
		took := time.Since(up)
		t.Logf("outage %d: API server down %v; %s created %v after it was ready, in the state %v after ready",
			i+1, up.Sub(down).Round(time.Millisecond), name, created.Sub(up).Round(time.Millisecond), took.Round(time.Millisecond))
		if took > bound {
			t.Errorf("outage %d: the Node watch resumed %v after the API server was ready; want within %v", i+1, took.Round(time.Millisecond), bound)
		}
	}
	// Outages are reported, and their end, without a warning per attempt
	// (one at the start, one per 30 s). A short outage can fall entirely
	// inside a watch the server closes early, which the reflector retries
	// itself: so at least one report, at most one per outage and 30 s.
	warn := logs.FilterMessageSnippet("unreachable").Len()
	if warn < 1 || warn > len(outages)+2 {
		t.Errorf("%d unreachable warnings over %d outages; want one per outage at most, plus one per 30 s", warn, len(outages))
	}
	if n := logs.FilterMessageSnippet("resumed").Len(); n < 1 || n > warn {
		t.Errorf("%d log lines saying the list/watch resumed, for %d outage warnings", n, warn)
	}
}
