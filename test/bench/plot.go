package main

import (
	"fmt"
	"image/color"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/crosswire/crosswire/test/benchplot"
)

// modeStyle names and colours the modes alike in both panels.
var modeStyle = map[string]struct {
	name  string
	color color.Color
}{
	Plaintext: {"plaintext", color.RGBA{R: 150, G: 150, B: 150, A: 255}},
	Reference: {"reference (wireguard-go)", color.RGBA{R: 66, G: 114, B: 196, A: 255}},
	Crosswire: {"crosswire", color.RGBA{R: 237, G: 125, B: 49, A: 255}},
}

const (
	barStep = 0.25
	// barWidth fills most of barStep at plotW: the panels' X axes span
	// 2 units in about 5 inches.
	barWidth = 40
)

// WritePNG draws throughput and CPU per GB per mode, 1 and 4 streams, into
// path: bars are medians, whiskers min–max over the rounds.
func (r *Report) WritePNG(path string) error {
	c, dc := benchplot.NewPage()
	r.drawHeader(dc)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadTop: benchplot.HeaderHeight, PadLeft: 8, PadRight: 16, PadBottom: 8, PadX: 32}
	panels := []struct{ title, ylabel, key1, key4 string }{
		{"TCP throughput (higher is better)", "Gbit/s", "tcp1_gbps", "tcp4_gbps"},
		{"CPU per GB: tunnel processes + softirq (lower is better)", "CPU seconds / GB", "tcp1_cpu_total_s_per_gb", "tcp4_cpu_total_s_per_gb"},
	}
	for i, pn := range panels {
		p, err := r.barPanel(pn.title, pn.ylabel, pn.key1, pn.key4)
		if err != nil {
			return fmt.Errorf("plot %s: %w", pn.title, err)
		}
		p.Draw(tiles.At(dc, i, 0))
	}
	return benchplot.SavePNG(c, path)
}

func (r *Report) drawHeader(dc draw.Canvas) {
	m := r.Machine
	when := m.Time
	if t, err := time.Parse(time.RFC3339, m.Time); err == nil {
		when = t.Format("2006-01-02 15:04 MST")
	}
	rounds := 0
	for _, st := range r.Summary["tcp1_gbps"] {
		rounds = max(rounds, st.N)
	}
	benchplot.Header(dc,
		fmt.Sprintf("crosswire datapath benchmark, %s, %d CPUs, kernel %s", when, m.Nproc, m.Kernel),
		fmt.Sprintf("2-node namespace cluster, pod → pod; bar = median of %d rounds, whisker = min–max, label = median", rounds))
}

// barPanel groups the modes' bars by stream count. The Y axis is linear
// from 0 so bar heights stay proportional, even though plaintext dwarfs
// the tunnels; the median labels keep the tunnels' figures readable.
func (r *Report) barPanel(title, ylabel string, keys ...string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 12
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	p.NominalX("1 stream", "4 streams")
	p.X.Min, p.X.Max = -0.5, float64(len(keys))-0.5
	p.Y.Tick.Marker = benchplot.NiceTicks{}
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil // it would run through the middle bar
	p.Add(grid)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = 10
	p.Legend.Padding = 3
	top := 0.0
	for i, mode := range modes {
		var vals plotter.Values
		var errs plotter.XYs
		var lows, highs []float64
		var labels []string
		x0 := float64(i-1) * barStep
		for j, k := range keys {
			st, ok := r.Summary[k][mode]
			vals = append(vals, st.Median)
			if !ok {
				continue
			}
			errs = append(errs, plotter.XY{X: x0 + float64(j), Y: st.Median})
			lows, highs = append(lows, st.Median-st.Min), append(highs, st.Max-st.Median)
			labels = append(labels, num(st.Median))
			top = max(top, st.Max)
		}
		bars, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return nil, err
		}
		bars.XMin = x0
		bars.Color = modeStyle[mode].color
		bars.LineStyle.Width = 0
		p.Add(bars)
		p.Legend.Add(modeStyle[mode].name, bars)
		if len(errs) == 0 {
			continue
		}
		eb, err := plotter.NewYErrorBars(whiskers{errs, lows, highs})
		if err != nil {
			return nil, err
		}
		eb.CapWidth = 10
		p.Add(eb)
		tops := make(plotter.XYs, len(errs))
		for j, e := range errs {
			tops[j] = plotter.XY{X: e.X, Y: e.Y + highs[j]}
		}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: tops, Labels: labels})
		if err != nil {
			return nil, err
		}
		for j := range lb.TextStyle {
			lb.TextStyle[j].XAlign = draw.XCenter
		}
		lb.Offset = vg.Point{Y: 4}
		p.Add(lb)
	}
	if top == 0 {
		top = 1
	}
	// Headroom for the labels and the legend above the tallest whisker.
	p.Y.Max = top * 1.3
	return p, nil
}

// whiskers are asymmetric error bars: median to min below, to max above.
type whiskers struct {
	plotter.XYs
	low, high []float64
}

func (w whiskers) YError(i int) (float64, float64) { return w.low[i], w.high[i] }
