// Package testenv decides what a test does when something it needs is
// missing: root, a tool on PATH, a built binary, a kernel device. On a
// developer's machine without them the test is skipped with the reason, so
// `go test ./...` passes and says what it did not run. Under CI (CI=true)
// or as root, where everything is expected to be installed, the same gap
// fails the test: a skip there would hide a broken machine.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
)

// Strict reports whether a missing prerequisite is a failure rather than a
// skip: under CI, or when running as root.
func Strict() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci || os.Geteuid() == 0
}

// TB is the part of testing.TB these helpers use.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Missing skips tb with the reason, or fails it when Strict.
func Missing(tb TB, format string, args ...any) {
	tb.Helper()
	reason := fmt.Sprintf(format, args...)
	if Strict() {
		tb.Fatalf("%s (CI or root: a missing prerequisite fails instead of skipping)", reason)
	}
	tb.Skipf("skipped: %s", reason)
}

// RequireRoot stops the test unless it runs as root; why says what root
// is needed for.
func RequireRoot(tb TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Missing(tb, "needs root (%s)", why)
	}
}

// RequireTools stops the test unless every tool is on PATH.
func RequireTools(tb TB, tools ...string) {
	tb.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(tb, "%s is not installed (./scripts/install-deps.sh installs it)", tool)
		}
	}
}

// RequireFile stops the test unless path exists; hint says how to make it.
func RequireFile(tb TB, path, hint string) {
	tb.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(tb, "%v; %s", err, hint)
	}
}

// RootOrExit is RequireRoot for a TestMain, which has no TB: without root
// it prints the reason and exits, 0 (skipped) or, when Strict, 1.
func RootOrExit(pkg, why string) {
	if os.Geteuid() == 0 {
		return
	}
	if Strict() {
		fmt.Fprintf(os.Stderr, "%s: FAIL: needs root (%s); CI=true makes a missing prerequisite a failure\n", pkg, why)
		os.Exit(1)
	}
	fmt.Printf("%s: skipped: needs root (%s)\n", pkg, why)
	os.Exit(0)
}
