package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// Both spellings print the stamped version and revision.
func TestVersionPrintsStamp(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		cmd := newRootCommand()
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		want := "crosswire " + version + " (revision " + revision + ", " + runtime.Version()
		if !strings.HasPrefix(out.String(), want) || strings.Count(out.String(), "\n") != 1 {
			t.Errorf("%v printed %q, want one line starting %q", args, out.String(), want)
		}
	}
}
