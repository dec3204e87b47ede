package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func syntheticReport() *Report {
	r := newReport(defaultConfig())
	r.Started = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r.Sizes = []SizeResult{
		// 0 ms cannot sit on the log axis; the plot must cope.
		{Nodes: 100, SyncedToAppliedMs: 0, EventP50Ms: 4.2, EventP99Ms: 48, RSSAfterSyncMiB: 37},
		{Nodes: 1000, SyncedToAppliedMs: 127, EventP50Ms: 18, EventP99Ms: 34, RSSAfterSyncMiB: 70},
		{Nodes: 5000, SyncedToAppliedMs: 647, EventP50Ms: 53, EventP99Ms: 135, RSSAfterSyncMiB: 224},
	}
	return r
}

// decodePNG checks the file is a PNG of the plot's size and returns it.
func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 400 {
		t.Errorf("%s is %v, want at least 800x400", path, b)
	}
	return img
}

func colors(img image.Image) map[color.RGBA]bool {
	seen := map[color.RGBA]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[color.RGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(bl >> 8), A: uint8(a >> 8)}] = true
		}
	}
	return seen
}

func TestPlotDrawsEverySeries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench-scale.png")
	if err := syntheticReport().WritePNG(path); err != nil {
		t.Fatal(err)
	}
	seen := colors(decodePNG(t, path))
	if len(seen) < 10 {
		t.Errorf("%d distinct colours: nothing much was drawn", len(seen))
	}
	for name, c := range map[string]color.RGBA{"sync": syncColor, "p50": p50Color, "p99": p99Color, "RSS": rssColor} {
		if !seen[c] {
			t.Errorf("no pixel of the %s colour %v: its line is missing", name, c)
		}
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
	decodePNG(t, path)
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
	decodePNG(t, filepath.Join(dir, "bench-scale.png"))
	md, err := os.ReadFile(filepath.Join(dir, "bench-scale.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "![scale](bench-scale.png)") {
		t.Errorf("Markdown does not reference the plot:\n%s", md)
	}
}
