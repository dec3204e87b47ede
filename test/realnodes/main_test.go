// Package realnodes proves crosswire as a real Kubernetes workload: its
// image pulled from a registry by containerd, its chart installed with helm
// and run by real kubelets (test/kubecluster), with the same evidence as
// the namespace end-to-end tests: underlay captures, kernel state, status.
package realnodes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crosswire/crosswire/build/ociimage"
	"github.com/crosswire/crosswire/internal/testenv"
	"github.com/crosswire/crosswire/test/kubecluster"
)

func TestMain(m *testing.M) {
	testenv.RootOrExit("realnodes", "network and mount namespaces, cgroups")
	os.Exit(m.Run())
}

// images are the crosswire images under test, built once per test binary:
// two builds of this tree with different version stamps (so an upgrade
// changes the digest) and the pod sandbox image (the first one, running
// `crosswire pause`; nodes here reach no public registry for
// registry.k8s.io/pause).
type images struct {
	first, second, sandbox v1.ImageIndex
}

var (
	imagesOnce sync.Once
	built      images
	buildErr   error
)

// Versions stamped into the two builds.
const (
	firstVersion  = "0.0.0-e2e.1"
	secondVersion = "0.0.0-e2e.2"
)

func buildImages(t testing.TB) images {
	t.Helper()
	imagesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crosswire-realnodes-bin-")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		build := func(version string) (v1.ImageIndex, error) {
			return ociimage.Build(ctx, ociimage.Options{
				Version:   version,
				Revision:  "e2e",
				Platforms: []v1.Platform{{OS: "linux", Architecture: runtime.GOARCH}},
				Binaries:  ociimage.GoBuild{ModuleDir: repoRoot(), OutDir: dir},
			})
		}
		if built.first, buildErr = build(firstVersion); buildErr != nil {
			return
		}
		if built.second, buildErr = build(secondVersion); buildErr != nil {
			return
		}
		built.sandbox, buildErr = kubecluster.PauseImage(built.first)
		fmt.Printf("realnodes: images built in %v\n", time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatalf("build images: %v", buildErr)
	}
	return built
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
