package main

import (
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crosswire/crosswire/test/benchplot"
)

func syntheticReport() *Report {
	r := newReport(defaultConfig())
	r.Started = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r.Sizes = []SizeResult{
		// 0 ms cannot sit on the log axis; the plot must cope.
		{Nodes: 100, SyncedToAppliedMs: 0, EventP50Ms: 4.2, EventP99Ms: 48, RSSAfterSyncMiB: 37, RSSAfterHeartbeatsMiB: 45, CPUPerHeartbeatMs: -0.1},
		{Nodes: 1000, SyncedToAppliedMs: 127, EventP50Ms: 18, EventP99Ms: 34, RSSAfterSyncMiB: 70, RSSAfterHeartbeatsMiB: 120, CPUPerHeartbeatMs: 3},
		{Nodes: 5000, SyncedToAppliedMs: 647, EventP50Ms: 53, EventP99Ms: 135, RSSAfterSyncMiB: 224, RSSAfterHeartbeatsMiB: 480, CPUPerHeartbeatMs: 15},
	}
	return r
}

func TestPlotDrawsEverySeries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench-scale.png")
	if err := syntheticReport().WritePNG(path); err != nil {
		t.Fatal(err)
	}
	want := map[string]color.RGBA{"sync": syncColor, "p50": p50Color, "p99": p99Color, "RSS": rssColor,
		"RSS after heartbeats": rssHBColor, "CPU per heartbeat": cpuColor}
	if err := benchplot.CheckDrawn(path, want); err != nil {
		t.Error(err)
	}
}

// The smoke test's single size (the X range is one point) and all-zero
// figures still plot.
func TestPlotOneSize(t *testing.T) {
	r := syntheticReport()
	r.Sizes = []SizeResult{{Nodes: 10}}
	path := filepath.Join(t.TempDir(), "p.png")
	if err := r.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	benchplot.RequirePNG(t, path)
	r.Sizes = nil
	if err := r.WritePNG(path); err == nil {
		t.Error("no sizes: want an error, not an empty plot")
	}
}

func TestReportWriteAddsPlot(t *testing.T) {
	dir := t.TempDir()
	if err := syntheticReport().Write(dir); err != nil {
		t.Fatal(err)
	}
	benchplot.RequirePNG(t, filepath.Join(dir, "bench-scale.png"))
	md, err := os.ReadFile(filepath.Join(dir, "bench-scale.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "![scale](bench-scale.png)") {
		t.Errorf("Markdown does not reference the plot:\n%s", md)
	}
}

// A written report renders again from its JSON alone, figure for figure.
func TestRenderFromJSON(t *testing.T) {
	dir, again := t.TempDir(), t.TempDir()
	r := syntheticReport()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	if err := renderReport(filepath.Join(dir, "bench-scale.json"), again); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bench-scale.json", "bench-scale.md"} {
		a, errA := os.ReadFile(filepath.Join(dir, f))
		b, errB := os.ReadFile(filepath.Join(again, f))
		if errA != nil || errB != nil || string(a) != string(b) {
			t.Errorf("%s differs after re-rendering (%v, %v)", f, errA, errB)
		}
	}
	benchplot.RequirePNG(t, filepath.Join(again, "bench-scale.png"))
}
