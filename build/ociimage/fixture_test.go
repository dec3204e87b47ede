package ociimage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Cross-compiling crosswire costs tens of seconds per platform on a small
// machine: every test shares one build per version, in one directory that
// TestMain removes.
var shared = &builds{indexes: map[string]v1.ImageIndex{}}

type builds struct {
	mu      sync.Mutex
	dir     string
	indexes map[string]v1.ImageIndex
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

var testCreated = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

const (
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testSource   = "https://github.com/crosswire/crosswire"
)

func testOptions(version string, bins Binaries) Options {
	return Options{
		Version:  version,
		Revision: testRevision,
		Source:   testSource,
		Licenses: "NOASSERTION",
		Created:  testCreated,
		Binaries: bins,
		// Under -race, default-level gzip of two 60 MiB binaries takes
		// minutes; what is tested does not depend on the level.
		FastCompression: true,
	}
}

func moduleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the source tree")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	return root
}

// goTool is the go command on PATH, else the one the project expects.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// builtIndex returns the index of version, built once per test process
// with the real go tool for both default platforms.
func builtIndex(t testing.TB, version string) v1.ImageIndex {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if idx, ok := shared.indexes[version]; ok {
		return idx
	}
	if shared.dir == "" {
		dir, err := os.MkdirTemp("", "ociimage-test-")
		if err != nil {
			t.Fatal(err)
		}
		shared.dir = dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	gb := GoBuild{ModuleDir: moduleRoot(t), OutDir: filepath.Join(shared.dir, "bin"), Go: goTool()}
	idx, err := Build(ctx, testOptions(version, gb))
	if err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s for linux/amd64 and linux/arm64 in %v: %s", version, time.Since(start).Round(time.Millisecond), d)
	shared.indexes[version] = idx
	return idx
}
