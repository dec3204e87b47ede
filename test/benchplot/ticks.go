package benchplot

import (
	"math"
	"strconv"

	"gonum.org/v1/plot"
)

// NiceTicks labels steps of 1, 2 or 5 times a power of ten, about five
// per axis, without trailing zeros.
type NiceTicks struct{}

// Ticks implements plot.Ticker.
func (NiceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 3, 64)}}
	}
	exp := int(math.Floor(math.Log10((hi - lo) / 5)))
	step := math.Pow10(exp)
	for _, m := range []float64{1, 2, 5, 10} {
		if (hi-lo)/(step*m) <= 6 {
			step *= m
			break
		}
	}
	// Multiples of step, not a running sum, so 0.1+0.2 never shows up.
	var ticks []plot.Tick
	// The tolerance keeps a tick that lands on hi but for rounding
	// (6 × 0.05 > 0.3 in floating point).
	for k := math.Ceil(lo/step - 1e-9); k*step <= hi+step*1e-9; k++ {
		v := k * step
		if v == 0 {
			v = 0 // not -0
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', max(0, -exp), 64)})
	}
	return ticks
}
