// Package e2e runs crosswire agents on network-namespace clusters and proves
// with underlay captures and kernel counters what is encrypted, what is not
// marked, and that the datapath survives drift, restarts and cleanup.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/crosswire/crosswire/internal/testenv"
)

// agentBin is the crosswire binary under test, built once per run.
var agentBin string

func TestMain(m *testing.M) {
	testenv.RootOrExit("e2e", "network namespaces")
	dir, err := os.MkdirTemp("", "crosswire-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "crosswire")
	build := exec.Command("go", "build", "-o", agentBin, "github.com/crosswire/crosswire/cmd/crosswire")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	code := 1
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build crosswire:", err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
