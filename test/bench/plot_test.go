package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func TestPlotDrawsEveryMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench-datapath.png")
	if err := syntheticReport().WritePNG(path); err != nil {
		t.Fatal(err)
	}
	seen := colors(decodePNG(t, path))
	if len(seen) < 10 {
		t.Errorf("%d distinct colours: nothing much was drawn", len(seen))
	}
	for _, mode := range modes {
		c := modeStyle[mode].color.(color.RGBA)
		if !seen[c] {
			t.Errorf("no pixel of %s's colour %v: its bars are missing", mode, c)
		}
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
	decodePNG(t, path)
	if err := (&Report{}).WritePNG(path); err != nil {
		t.Fatalf("empty report: %v", err)
	}
	decodePNG(t, path)
}

func TestReportWriteAddsPlot(t *testing.T) {
	dir := t.TempDir()
	r := syntheticReport()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	decodePNG(t, filepath.Join(dir, "bench-datapath.png"))
	md, err := os.ReadFile(filepath.Join(dir, "bench-datapath.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "![datapath](bench-datapath.png)") || strings.Contains(string(md), "No PNG plot") {
		t.Errorf("Markdown does not reference the plot:\n%s", md)
	}
}
