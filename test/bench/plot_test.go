package main

import (
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crosswire/crosswire/test/benchplot"
)

func syntheticReport() *Report {
	st := func(med, lo, hi float64) Stat { return Stat{Median: med, Min: lo, Max: hi, N: 3} }
	return &Report{
		Machine: Machine{Time: "2026-01-02T03:04:05Z", Nproc: 2, Kernel: "6.1.0-test"},
		Summary: map[string]map[string]Stat{
			"tcp1_gbps":               {Plaintext: st(15, 13, 17), Reference: st(2.5, 1.9, 3.2), Crosswire: st(2.8, 1.8, 3.1)},
			"tcp4_gbps":               {Plaintext: st(38, 20, 39), Reference: st(2.7, 1.7, 3.2), Crosswire: st(2.1, 1.8, 3.2)},
			"tcp1_cpu_total_s_per_gb": {Plaintext: st(0.3, 0.25, 0.31), Reference: st(4.7, 4.6, 5.1), Crosswire: st(4.8, 4.7, 5.1)},
			"tcp4_cpu_total_s_per_gb": {Plaintext: st(0.15, 0.14, 0.2), Reference: st(4.8, 4.6, 5.6), Crosswire: st(5.4, 4.8, 5.5)},
		},
	}
}

func TestPlotDrawsEveryMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench-datapath.png")
	if err := syntheticReport().WritePNG(path); err != nil {
		t.Fatal(err)
	}
	want := map[string]color.RGBA{}
	for _, mode := range modes {
		want[mode] = modeStyle[mode].color.(color.RGBA)
	}
	if err := benchplot.CheckDrawn(path, want); err != nil {
		t.Error(err)
	}
}

// A report missing modes or metrics (an aborted run) still plots.
func TestPlotPartialReport(t *testing.T) {
	r := syntheticReport()
	delete(r.Summary, "tcp4_cpu_total_s_per_gb")
	delete(r.Summary["tcp1_gbps"], Crosswire)
	path := filepath.Join(t.TempDir(), "p.png")
	if err := r.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	benchplot.RequirePNG(t, path)
	if err := (&Report{}).WritePNG(path); err != nil {
		t.Fatalf("empty report: %v", err)
	}
	benchplot.RequirePNG(t, path)
}

func TestReportWriteAddsPlot(t *testing.T) {
	dir := t.TempDir()
	r := syntheticReport()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	benchplot.RequirePNG(t, filepath.Join(dir, "bench-datapath.png"))
	md, err := os.ReadFile(filepath.Join(dir, "bench-datapath.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "![datapath](bench-datapath.png)") || strings.Contains(string(md), "No PNG plot") {
		t.Errorf("Markdown does not reference the plot:\n%s", md)
	}
}
