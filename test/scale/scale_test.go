package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/crosswire/crosswire/internal/testenv"
	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/benchplot"
)

// TestSmoke runs the benchmark at 10 nodes with 5 events and a 3 s churn,
// in both peer modes, so it keeps working. It asserts that every figure exists, never how fast
// anything is, and that nothing of the run is left behind.
func TestSmoke(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces, nftables, TUN")
	cfg := defaultConfig()
	cfg.Sizes, cfg.Events, cfg.Churn, cfg.Sample = []int{10}, 5, 3*time.Second, time.Second
	cfg.Heartbeats, cfg.HeartbeatRate, cfg.Settle = 20, 20, 0
	cfg.Out = t.TempDir()
	cfg.Bin = filepath.Join(t.TempDir(), "crosswire")
	if out, err := exec.Command("go", "build", "-o", cfg.Bin, "github.com/crosswire/crosswire/cmd/crosswire").CombinedOutput(); err != nil {
		t.Fatalf("build crosswire: %v\n%s", err, out)
	}
	testenv.RequireFile(t, filepath.Join(apiserver.DefaultToolsDir(), "kube-apiserver"), "build it with make tools")
	var progress bytes.Buffer
	rep, err := Run(context.Background(), cfg, &progress)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Write(cfg.Out); err != nil {
		t.Fatal(err)
	}
	if len(rep.Sizes) != 2 || rep.Sizes[0].Peers != ModeAll || rep.Sizes[1].Peers != ModeOnDemand {
		t.Fatalf("measured %+v, want 10 nodes in both modes", rep.Sizes)
	}
	for _, s := range rep.Sizes {
		checkSmokeResult(t, s)
	}
	for _, f := range []string{"bench-scale.json", "bench-scale.md", "bench-scale.png"} {
		if st, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	benchplot.RequirePNG(t, filepath.Join(cfg.Out, "bench-scale.png"))
}

func checkSmokeResult(t *testing.T, s SizeResult) {
	t.Helper()
	for name, v := range map[string]float64{
		"start_to_applied_ms": s.StartToAppliedMs, "start_to_cache_synced_ms": s.StartToSyncedMs,
		"event_p50_ms": s.EventP50Ms, "event_p99_ms": s.EventP99Ms, "apply_mean_ms": s.ApplyMeanMs,
		"rss_after_sync_mib": s.RSSAfterSyncMiB, "rss_after_events_mib": s.RSSAfterEventsMiB,
		"churn_add_p50_ms": s.AddP50Ms, "churn_add_p99_ms": s.AddP99Ms,
		"rss_after_heartbeats_mib": s.RSSAfterHeartbeatsMiB, "heartbeat_seconds": s.HeartbeatSeconds,
		"event_during_heartbeats_p50_ms": s.LoadedEventP50Ms, "event_during_heartbeats_p99_ms": s.LoadedEventP99Ms,
	} {
		if !(v > 0) {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	if s.SyncedToAppliedMs < 0 {
		t.Errorf("cache synced -> applied %v ms: the log's order is off", s.SyncedToAppliedMs)
	}
	wantPeers := 9
	if s.Peers == ModeOnDemand {
		wantPeers = 0 // nothing sent traffic to the other (API-only) nodes
	}
	if s.WGPeers != wantPeers || s.Events != 5 {
		t.Errorf("%s peers: %d configured and %d events, want %d and 5", s.Peers, s.WGPeers, s.Events, wantPeers)
	}
	// Real-shaped: a Node of a cloud cluster is 10-20 KB, written by five
	// field managers.
	if s.NodeBytes < 10_000 || s.NodeBytes > 25_000 || s.NodeManagedFields < 5 {
		t.Errorf("a Node is %d bytes with %d managedFields entries, want 10-25 KB and >= 5", s.NodeBytes, s.NodeManagedFields)
	}
	if s.Heartbeats != 20 || s.LoadedEvents != 5 {
		t.Errorf("%d heartbeats and %d events during heartbeats, want 20 and 5", s.Heartbeats, s.LoadedEvents)
	}
	// Heartbeats change nothing the agent reads: its datapath stays as it is.
	if s.AppliesDuringHeartbeats != 0 {
		t.Errorf("%d datapath applies during heartbeats, want 0", s.AppliesDuringHeartbeats)
	}
	if len(s.ChurnSamples) < 2 || s.ChurnSamples[0].Goroutines == 0 || s.ChurnSamples[len(s.ChurnSamples)-1].RSSMiB == 0 {
		t.Errorf("churn samples: %+v", s.ChurnSamples)
	}
	// Cleaned up: the run's namespaces are gone (and with them the agent,
	// etcd and kube-apiserver).
	if left, _ := filepath.Glob("/var/run/netns/" + s.Cluster + "-*"); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

// The heartbeat window holds -heartbeats, or as many as fit in its
// longest duration at the rate: small clusters heartbeat slowly.
func TestHeartbeatCount(t *testing.T) {
	cfg := defaultConfig()
	for _, c := range []struct {
		nodes int
		want  int
	}{{5000, 1000}, {1000, 1000}, {100, 100}, {10, 100}} {
		if got := cfg.heartbeatCount(cfg.heartbeatRate(c.nodes)); got != c.want {
			t.Errorf("%d nodes: %d heartbeats at %g/s, want %d", c.nodes, got, cfg.heartbeatRate(c.nodes), c.want)
		}
	}
	if r := cfg.heartbeatRate(5000); r != 50 {
		t.Errorf("5000 nodes: %g heartbeats/s, want 50 (one per node every 100 s)", r)
	}
}
