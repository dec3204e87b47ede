package main

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/crosswire/crosswire/test/benchplot"
)

// legendH is the strip below the panels for their legends: 5 lines.
const legendH = 86 // points

var (
	syncColor  = color.RGBA{R: 66, G: 114, B: 196, A: 255}
	p50Color   = color.RGBA{R: 112, G: 173, B: 71, A: 255}
	p99Color   = color.RGBA{R: 237, G: 125, B: 49, A: 255}
	rssColor   = color.RGBA{R: 128, G: 100, B: 162, A: 255}
	rssHBColor = color.RGBA{R: 191, G: 144, B: 0, A: 255}
	cpuColor   = color.RGBA{R: 192, G: 0, B: 0, A: 255}
)

// The page is wider than benchplot's for a third panel, the heartbeats'.
const pageWidth, pageHeight = 17 * vg.Inch, benchplot.Height

// series is one measured figure across the cluster sizes.
type series struct {
	name  string
	color color.Color
	value func(SizeResult) float64
}

// WritePNG draws the sync and event latencies, the RSS after sync and
// after the heartbeats, and the agent's CPU per heartbeat against the
// cluster size into path, with the targets dashed.
func (r *Report) WritePNG(path string) error {
	if len(r.Sizes) == 0 {
		return fmt.Errorf("no sizes to plot")
	}
	c := vgimg.New(pageWidth, pageHeight)
	dc := draw.New(c)
	benchplot.Header(dc,
		fmt.Sprintf("crosswire control-plane scale, %s, %d CPUs, %s",
			r.Started.Format("2006-01-02 15:04 MST"), r.Machine.CPUs, r.Machine.Go),
		fmt.Sprintf("one agent against a real kube-apiserver, real-shaped Nodes; %d Node updates and %d heartbeats per size; dashed: the targets (for 5000 nodes)",
			r.Config.Events, r.Config.Heartbeats))
	// The legends go below the panels: inside, they would cover whatever
	// the data puts in their corner.
	tiles := draw.Tiles{Rows: 1, Cols: 3, PadTop: benchplot.HeaderHeight, PadLeft: 8, PadRight: 16, PadBottom: legendH + 8, PadX: 32}

	// Log Y: the p50 is a few ms where the sync takes hundreds.
	lat := r.newPanel("Latency (lower is better)", "ms", true)
	targets := []struct {
		series
		short  string
		target float64
	}{
		{series{"cache synced → datapath applied", syncColor, func(s SizeResult) float64 { return s.SyncedToAppliedMs }}, "sync", r.Targets.SyncedToAppliedMs},
		{series{"Node update → applied, p50", p50Color, func(s SizeResult) float64 { return s.EventP50Ms }}, "", 0},
		{series{"Node update → applied, p99", p99Color, func(s SizeResult) float64 { return s.EventP99Ms }}, "p99", r.Targets.EventP99Ms},
	}
	for _, t := range targets {
		if err := lat.addSeries(r.Sizes, ModeAll, t.series); err != nil {
			return err
		}
	}
	// On-demand peers: only the figures it changes, to keep the panel
	// readable.
	for _, t := range targets {
		if t.target > 0 {
			if err := lat.addSeries(r.Sizes, ModeOnDemand, t.series); err != nil {
				return err
			}
		}
	}
	for _, t := range targets {
		if t.target > 0 {
			lat.addTarget(fmt.Sprintf("target: %s < %g ms", t.short, t.target), t.color, t.target)
		}
	}
	// Log axes need a positive range; pad it by a factor each way.
	lo, hi := yRange(lat.Plot)
	lat.Y.Min, lat.Y.Max = lo/3, hi*3

	rss := r.newPanel("Agent RSS (lower is better)", "MiB", false)
	for _, s := range []series{
		{"RSS after sync", rssColor, func(s SizeResult) float64 { return s.RSSAfterSyncMiB }},
		{"RSS after the heartbeats", rssHBColor, func(s SizeResult) float64 { return s.RSSAfterHeartbeatsMiB }},
	} {
		for _, mode := range []string{ModeAll, ModeOnDemand} {
			if err := rss.addSeries(r.Sizes, mode, s); err != nil {
				return err
			}
		}
	}
	rss.addTarget(fmt.Sprintf("target: < %g MiB", r.Targets.RSSMiB), rssColor, r.Targets.RSSMiB)
	_, hi = yRange(rss.Plot)
	rss.Y.Min, rss.Y.Max = 0, hi*1.15

	// CPU per heartbeat can come out slightly negative (idle noise) when
	// the agent does almost nothing; a linear axis shows that as it is.
	cpu := r.newPanel("Agent CPU per heartbeat (lower is better)", "ms", false)
	for _, mode := range []string{ModeAll, ModeOnDemand} {
		if err := cpu.addSeries(r.Sizes, mode, series{"CPU per heartbeat, above idle", cpuColor, func(s SizeResult) float64 { return s.CPUPerHeartbeatMs }}); err != nil {
			return err
		}
	}
	lo, hi = cpu.Y.Min, cpu.Y.Max
	cpu.Y.Min, cpu.Y.Max = min(0, lo*1.15), max(1, hi*1.15)

	for i, p := range []*panel{lat, rss, cpu} {
		tile := tiles.At(dc, i, 0)
		p.Draw(tile)
		p.drawLegends(tile)
	}
	return benchplot.SavePNG(c, path)
}

// panel is a plot with its legends kept apart, to draw below it.
type panel struct {
	*plot.Plot
	measured, targets plot.Legend
}

// newPanel has a log X axis ticked at the measured sizes, which are a
// decade or so apart.
func (r *Report) newPanel(title, ylabel string, logY bool) *panel {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 12
	p.X.Label.Text = "cluster size (Nodes, log scale)"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	var ticks plot.ConstantTicks
	lo, hi := math.Inf(1), math.Inf(-1)
	seen := map[int]bool{}
	for _, s := range r.Sizes {
		n := float64(s.Nodes)
		if seen[s.Nodes] {
			continue
		}
		seen[s.Nodes] = true
		ticks = append(ticks, plot.Tick{Value: n, Label: strconv.Itoa(s.Nodes)})
		lo, hi = min(lo, n), max(hi, n)
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = lo/1.5, hi*1.5
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text += " (log scale)"
	} else {
		p.Y.Tick.Marker = benchplot.NiceTicks{}
	}
	p.Add(plotter.NewGrid())
	pn := &panel{Plot: p, measured: plot.NewLegend(), targets: plot.NewLegend()}
	for _, l := range []*plot.Legend{&pn.measured, &pn.targets} {
		l.Top, l.Left = true, true
		l.TextStyle.Font.Size = 10
		l.Padding = 3
	}
	return pn
}

// addSeries draws one line with points for the results of one peer mode
// (on-demand: dotted, triangles). On a log Y axis a point at 0 cannot be
// drawn and is left out; the Markdown table still has it.
func (p *panel) addSeries(sizes []SizeResult, mode string, s series) error {
	_, logY := p.Y.Scale.(plot.LogScale)
	var xys plotter.XYs
	for _, sz := range sizes {
		if sz.Peers != mode && (sz.Peers != "" || mode != ModeAll) {
			continue // results from before modes existed are all-peers
		}
		if v := s.value(sz); v > 0 || !logY {
			xys = append(xys, plotter.XY{X: float64(sz.Nodes), Y: v})
		}
	}
	if len(xys) == 0 {
		return nil
	}
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return fmt.Errorf("plot %s: %w", s.name, err)
	}
	line.Color, line.Width = s.color, vg.Points(2)
	points.Color, points.Shape, points.Radius = s.color, draw.CircleGlyph{}, vg.Points(3.5)
	name := s.name
	if mode == ModeOnDemand {
		line.Dashes = []vg.Length{vg.Points(2), vg.Points(3)}
		points.Shape, points.Radius = draw.TriangleGlyph{}, vg.Points(4.5)
		name += ", on-demand peers"
	}
	p.Add(line, points)
	p.measured.Add(name, line, points)
	return nil
}

func (p *panel) addTarget(name string, c color.Color, y float64) {
	line := &plotter.Line{XYs: plotter.XYs{{X: p.X.Min, Y: y}, {X: p.X.Max, Y: y}}}
	line.Color, line.Width, line.Dashes = c, vg.Points(1.5), []vg.Length{vg.Points(6), vg.Points(4)}
	p.Add(line)
	p.targets.Add(name, line)
}

// drawLegends puts the measured series and the targets side by side in
// the strip below tile, lined up with its data area.
func (p *panel) drawLegends(tile draw.Canvas) {
	data := p.DataCanvas(tile)
	strip := draw.Canvas{Canvas: tile.Canvas, Rectangle: vg.Rectangle{
		Min: vg.Point{X: data.Min.X, Y: tile.Min.Y - legendH},
		Max: vg.Point{X: tile.Max.X, Y: tile.Min.Y - 4},
	}}
	p.measured.Draw(strip)
	strip.Min.X = (strip.Min.X+strip.Max.X)/2 + 16
	p.targets.Draw(strip)
}

// yRange is the Y range of what was added, at least 1 so that a log axis
// of an empty or all-zero plot still has a range.
func yRange(p *plot.Plot) (lo, hi float64) {
	lo, hi = p.Y.Min, p.Y.Max
	if !(lo > 0) {
		lo = 1
	}
	if !(hi > 0) {
		hi = 1
	}
	return lo, max(lo, hi)
}
