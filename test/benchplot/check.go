package benchplot

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"slices"
)

// ReadPNG decodes the PNG at path and checks it has at least the size the
// plots are drawn at (a truncated or placeholder file fails).
func ReadPNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 400 {
		return img, fmt.Errorf("%s is %v, want at least 800x400", path, b)
	}
	return img, nil
}

// Colors returns every colour img has, for tests that look for a series'
// colour to tell it was drawn.
func Colors(img image.Image) map[color.RGBA]bool {
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

// CheckDrawn reads the plot at path and reports an error unless it has
// something drawn (at least ten colours) and a pixel of every colour in
// want (by series name): a series whose colour is missing was not drawn.
func CheckDrawn(path string, want map[string]color.RGBA) error {
	img, err := ReadPNG(path)
	if err != nil {
		return err
	}
	seen := Colors(img)
	if len(seen) < 10 {
		return fmt.Errorf("%s: %d distinct colours: nothing much was drawn", path, len(seen))
	}
	var missing []string
	for name, c := range want {
		if !seen[c] {
			missing = append(missing, fmt.Sprintf("%s %v", name, c))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("%s: no pixel of the colour of %v: not drawn", path, missing)
	}
	return nil
}
