package ociimage

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// GoBuild compiles the crosswire command with the go tool: static
// (CGO_ENABLED=0), -trimpath, stripped, stamped through -ldflags -X.
type GoBuild struct {
	// ModuleDir is the root of crosswire's module (where go.mod is).
	ModuleDir string
	// Package is the main package; empty means ./cmd/crosswire.
	Package string
	// OutDir receives the binaries, one file per platform and stamp.
	OutDir string
	// Go is the go tool; empty means "go" on PATH.
	Go string
}

// buildEnvKeys are the variables that change the bytes the compiler and
// linker produce; Binary replaces them all, so a developer's GOAMD64=v3 or
// GOFLAGS cannot change the digest of a commit.
var buildEnvKeys = []string{"GOOS", "GOARCH", "CGO_ENABLED", "GOFLAGS", "GOAMD64", "GOARM64", "GOARM"}

// Binary builds the binary for p and returns its path.
func (g GoBuild) Binary(ctx context.Context, p v1.Platform, version, revision string) (string, error) {
	if g.ModuleDir == "" || g.OutDir == "" {
		return "", fmt.Errorf("ociimage: GoBuild needs ModuleDir and OutDir")
	}
	pkg, goTool := g.Package, g.Go
	if pkg == "" {
		pkg = "./cmd/crosswire"
	}
	if goTool == "" {
		goTool = "go"
	}
	if err := os.MkdirAll(g.OutDir, 0o755); err != nil {
		return "", fmt.Errorf("ociimage: binary directory: %w", err)
	}
	stamp := sha256.Sum256([]byte(version + "\x00" + revision))
	out, err := filepath.Abs(filepath.Join(g.OutDir, fmt.Sprintf("crosswire_%s_%s_%x", p.OS, p.Architecture, stamp[:6])))
	if err != nil {
		return "", err
	}
	ldflags := fmt.Sprintf("-s -w -X main.version=%s -X main.revision=%s", version, revision)
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = g.ModuleDir
	cmd.Env = append(withoutKeys(os.Environ(), buildEnvKeys),
		"GOOS="+p.OS, "GOARCH="+p.Architecture, "CGO_ENABLED=0",
		// VCS stamping would make the binary depend on the working tree's
		// state; the revision is stamped explicitly instead.
		"GOFLAGS=-buildvcs=false -mod=readonly",
		"GOAMD64=v1", "GOARM64=v8.0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ociimage: go build %s for %s: %w\n%s", pkg, p.String(), err, b)
	}
	return out, nil
}

func withoutKeys(env, keys []string) []string {
	kept := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, k := range keys {
			drop = drop || name == k
		}
		if !drop {
			kept = append(kept, kv)
		}
	}
	return kept
}

// Prebuilt maps "os/arch" to a binary built elsewhere, already stamped with
// the Options' version and revision (they are not checked).
type Prebuilt map[string]string

// Binary returns the file for p.
func (b Prebuilt) Binary(_ context.Context, p v1.Platform, _, _ string) (string, error) {
	path, ok := b[p.OS+"/"+p.Architecture]
	if !ok {
		return "", fmt.Errorf("ociimage: no prebuilt binary for %s", p.String())
	}
	return path, nil
}
