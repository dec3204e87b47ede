package soak

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/crosswire/crosswire/internal/testenv"
)

// bins are the two crosswire builds the soak runs: the second is stamped
// with another version, so an upgrade replaces the binary with a
// different one, as a new image would.
var bins [2]string

func TestMain(m *testing.M) {
	testenv.RootOrExit("soak", "network namespaces")
	dir, err := os.MkdirTemp("", "crosswire-soak-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
	} else {
		code = m.Run()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func build(dir string) error {
	for i, v := range []string{"soak-a", "soak-b"} {
		bins[i] = filepath.Join(dir, "crosswire-"+v)
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+v, "-o", bins[i], "github.com/crosswire/crosswire/cmd/crosswire")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build crosswire %s: %w", v, err)
		}
	}
	return nil
}
