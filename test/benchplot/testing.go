package benchplot

import "testing"

// RequirePNG fails the test unless path holds a plot-sized PNG.
func RequirePNG(t testing.TB, path string) {
	t.Helper()
	if _, err := ReadPNG(path); err != nil {
		t.Fatal(err)
	}
}
