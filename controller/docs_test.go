package controller

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestDocsTombstones keeps docs/design.md's figures for tombstones true.
func TestDocsTombstones(t *testing.T) {
	b, err := os.ReadFile("../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(b)), " ")
	if TombstoneTTL != time.Hour || defaultRebuild != 10*time.Minute {
		t.Fatalf("TombstoneTTL %v, rebuild %v: docs/design.md says an hour, checked every 10 minutes", TombstoneTTL, defaultRebuild)
	}
	for _, want := range []string{
		"after an hour (`controller.TombstoneTTL`, checked at each periodic rebuild, so up to an hour and ten minutes;",
		fmt.Sprintf("beyond %d tombstones (`controller.MaxTombstones`)", MaxTombstones),
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/design.md does not say %q", want)
		}
	}
}
