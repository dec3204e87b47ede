package benchplot

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Page size of every benchmark plot, and the strip above its panels that
// Header fills.
const (
	Width, Height = 12 * vg.Inch, 5.5 * vg.Inch
	HeaderHeight  = 46 // points
)

// NewPage returns an empty page and its drawing canvas.
func NewPage() (*vgimg.Canvas, draw.Canvas) {
	c := vgimg.New(Width, Height)
	return c, draw.New(c)
}

// Header writes a title and a smaller subtitle centred at the top of dc.
func Header(dc draw.Canvas, title, subtitle string) {
	y := dc.Max.Y - 4
	for _, l := range []struct {
		size vg.Length
		text string
	}{{14, title}, {10, subtitle}} {
		sty := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, l.size), XAlign: draw.XCenter, YAlign: draw.YTop, Handler: plot.DefaultTextHandler}
		dc.FillText(sty, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: y}, l.text)
		y -= sty.Height(l.text) + 4
	}
}

// SavePNG writes the page to path.
func SavePNG(c *vgimg.Canvas, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
