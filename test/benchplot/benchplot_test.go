package benchplot

import (
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
)

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   []string
	}{
		{0, 10, []string{"0", "2", "4", "6", "8", "10"}},
		{0, 0.3, []string{"0.00", "0.05", "0.10", "0.15", "0.20", "0.25", "0.30"}},
		{0, 250, []string{"0", "50", "100", "150", "200", "250"}},
		{5, 5, []string{"5"}},
	} {
		var got []string
		for _, tk := range (NiceTicks{}).Ticks(tc.lo, tc.hi) {
			got = append(got, tk.Label)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Ticks(%v, %v) = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
}

// A page with a header and one line plot, saved and read back: the size
// checks pass and the line's colour is there.
func TestPageRoundTrip(t *testing.T) {
	c, dc := NewPage()
	Header(dc, "title", "subtitle")
	p := plot.New()
	line, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		t.Fatal(err)
	}
	red := color.RGBA{R: 255, A: 255}
	line.Color = red
	p.Add(line)
	p.Draw(dc)
	path := filepath.Join(t.TempDir(), "page.png")
	if err := SavePNG(c, path); err != nil {
		t.Fatal(err)
	}
	img, err := ReadPNG(path)
	if err != nil {
		t.Fatal(err)
	}
	if !Colors(img)[red] {
		t.Error("the line's colour is not in the PNG")
	}
	if err := CheckDrawn(path, map[string]color.RGBA{"line": red}); err != nil {
		t.Error(err)
	}
	if err := CheckDrawn(path, map[string]color.RGBA{"line": red, "absent": {B: 255, A: 255}}); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Errorf("CheckDrawn with a colour never drawn: %v", err)
	}
	if err := os.WriteFile(path, []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPNG(path); err == nil {
		t.Error("ReadPNG accepted a file that is not a PNG")
	}
}
