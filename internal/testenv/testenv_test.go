package testenv

import (
	"fmt"
	"os"
	"testing"
)

// recorder is a TB that records what a helper did instead of doing it.
type recorder struct {
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	if r.skipped == "" && r.failed == "" {
		r.skipped = fmt.Sprintf(format, args...)
	}
}
func (r *recorder) Fatalf(format string, args ...any) {
	if r.skipped == "" && r.failed == "" {
		r.failed = fmt.Sprintf(format, args...)
	}
}

func TestMissingSkipsOnlyWhenNotStrict(t *testing.T) {
	root := os.Geteuid() == 0
	for _, ci := range []string{"", "true", "false", "1"} {
		t.Setenv("CI", ci)
		strict := root || ci == "true" || ci == "1"
		if Strict() != strict {
			t.Errorf("CI=%q root=%t: Strict() = %t, want %t", ci, root, Strict(), strict)
		}
		var r recorder
		Missing(&r, "needs %s", "a thing")
		if strict && (r.failed == "" || r.skipped != "") {
			t.Errorf("CI=%q root=%t: want a failure, got skip %q fail %q", ci, root, r.skipped, r.failed)
		}
		if !strict && (r.skipped != "skipped: needs a thing" || r.failed != "") {
			t.Errorf("CI=%q root=%t: want skip \"skipped: needs a thing\", got skip %q fail %q", ci, root, r.skipped, r.failed)
		}
	}
}

func TestRequireToolsAndFile(t *testing.T) {
	t.Setenv("CI", "true") // strict: a missing tool or file fails
	var r recorder
	RequireTools(&r, "sh")
	RequireFile(&r, os.Args[0], "build it")
	if r.failed != "" || r.skipped != "" {
		t.Errorf("present tool and file: skip %q fail %q", r.skipped, r.failed)
	}
	RequireTools(&r, "crosswire-no-such-tool")
	if r.failed == "" {
		t.Error("missing tool under CI did not fail")
	}
	r = recorder{}
	RequireFile(&r, "/nonexistent/crosswire", "run make tools")
	if r.failed == "" {
		t.Error("missing file under CI did not fail")
	}
}
