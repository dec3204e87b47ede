package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crosswire/crosswire/internal/testenv"
	"github.com/crosswire/crosswire/test/benchplot"
)

// TestSmoke runs one tiny round of every mode (1 s transfers, 20 pings) so
// the benchmark keeps working: it asserts that every figure exists and is
// positive and that nothing is left behind, never how fast anything is.
func TestSmoke(t *testing.T) {
	testenv.RequireRoot(t, "network namespaces")
	cfg := defaultConfig()
	if _, err := os.Stat(cfg.WireGuardGo); err != nil {
		t.Fatalf("reference wireguard-go missing (%v): build it with `make tools` (test/tools/build.sh)", err)
	}
	cfg.Rounds, cfg.Duration, cfg.Pings, cfg.Out = 1, time.Second, 20, t.TempDir()
	var progress bytes.Buffer
	rep, err := Run(context.Background(), cfg, &progress)
	t.Logf("progress:\n%s", progress.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Write(cfg.Out); err != nil {
		t.Fatal(err)
	}
	if len(rep.Samples) != len(modes) {
		t.Fatalf("%d samples, want %d", len(rep.Samples), len(modes))
	}
	for _, s := range rep.Samples {
		for _, k := range []string{"tcp1_gbps", "tcp4_gbps", "tcp1_cpu_total_s_per_gb", "tcp4_cpu_total_s_per_gb",
			"rtt_idle_p50_ms", "rtt_idle_p99_ms", "rtt_load_p50_ms", "rtt_load_p99_ms"} {
			if !(s.Metrics[k] > 0) {
				t.Errorf("%s: %s = %v, want > 0", s.Mode, k, s.Metrics[k])
			}
		}
		if s.Mode != Plaintext && !(s.Metrics["tcp1_cpu_node1_s_per_gb"] > 0 && s.Metrics["tcp1_cpu_node2_s_per_gb"] > 0) {
			t.Errorf("%s: no tunnel CPU measured: %v", s.Mode, s.Metrics)
		}
	}
	for _, k := range []string{"tcp1_gbps", "tcp4_gbps", "rtt_idle_p50_ms"} {
		if !(rep.Ratios[k] > 0) {
			t.Errorf("ratio %s = %v, want > 0", k, rep.Ratios[k])
		}
	}
	for _, f := range []string{"bench-datapath.json", "bench-datapath.md", "bench-datapath.png"} {
		if st, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	benchplot.RequirePNG(t, filepath.Join(cfg.Out, "bench-datapath.png"))
	// Cleaned up: no namespace (so no process) and no reference socket
	// of this run.
	p := rep.Machine.Cluster
	if p == "" {
		t.Fatal("report has no cluster prefix")
	}
	for _, pattern := range []string{"/var/run/netns/" + p + "-*", "/var/run/wireguard/wgr" + strings.TrimPrefix(p, "cw") + "n*"} {
		if left, _ := filepath.Glob(pattern); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
}

// TestWireGuardVersion keeps WireGuardVersion, which names the reference
// binary's directory, equal to the version crosswire links.
func TestWireGuardVersion(t *testing.T) {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\tgolang.zx2c4.com/wireguard "+WireGuardVersion+"\n") {
		t.Errorf("go.mod does not require golang.zx2c4.com/wireguard %s: update WireGuardVersion", WireGuardVersion)
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	if got := percentile(v, 50); got != 5 {
		t.Errorf("p50 = %v, want 5", got)
	}
	if got := percentile(v, 99); got != 10 {
		t.Errorf("p99 = %v, want 10", got)
	}
	if got := median([]float64{3, 1, 2, 4}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
}
