// Command crosswire-image builds crosswire's multi-platform OCI image
// without Docker (see build/ociimage) and writes it as an OCI layout, as a
// tarball for `ctr images import` / kind / k3d, and optionally pushes it.
// `make image` and `make image-push` run it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crosswire/crosswire/build/ociimage"
)

type config struct {
	version, revision, source, licenses string
	created                             int64
	platforms                           string
	repository                          string
	moduleDir, binDir                   string
	layout, tarball                     string
	push                                string
	insecure                            bool
}

func main() {
	c, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		err = run(ctx, c, os.Stdout)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crosswire-image:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, errOut io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("crosswire-image", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.StringVar(&c.version, "version", "", "version stamped into the binary, the label and the tag (required)")
	fs.StringVar(&c.revision, "revision", "", "source revision (commit) stamped and labelled (required)")
	fs.Int64Var(&c.created, "created", -1, "image timestamp, Unix seconds (default $SOURCE_DATE_EPOCH, else 0); use the commit time")
	fs.StringVar(&c.source, "source", "https://github.com/crosswire/crosswire", "org.opencontainers.image.source label")
	fs.StringVar(&c.licenses, "licenses", "NOASSERTION", "org.opencontainers.image.licenses label (SPDX)")
	fs.StringVar(&c.platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	fs.StringVar(&c.repository, "repository", "ghcr.io/crosswire/crosswire", "repository the tarball and layout name the image as (REPOSITORY:VERSION)")
	fs.StringVar(&c.moduleDir, "module", ".", "crosswire's module root")
	fs.StringVar(&c.binDir, "bin-dir", "bin/image-build", "directory for the cross-built binaries")
	fs.StringVar(&c.layout, "layout", "", "write an OCI image layout to this directory (replaced if it holds one)")
	fs.StringVar(&c.tarball, "tarball", "", "write the layout as one tar file (ctr/kind/k3d import)")
	fs.StringVar(&c.push, "push", "", "push to this repository (host/path/crosswire), tagged with -version")
	fs.BoolVar(&c.insecure, "insecure", false, "allow plain HTTP to the -push registry (local registries)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() != 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.version == "" || c.revision == "" {
		return c, errors.New("-version and -revision are required")
	}
	if c.layout == "" && c.tarball == "" && c.push == "" {
		return c, errors.New("nothing to do: give -layout, -tarball or -push")
	}
	if c.created < 0 {
		c.created = 0
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return c, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want Unix seconds", s)
			}
			c.created = n
		}
	}
	return c, nil
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var ps []v1.Platform
	for _, f := range strings.Split(s, ",") {
		osName, arch, ok := strings.Cut(strings.TrimSpace(f), "/")
		if !ok || osName == "" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("-platforms: %q is not os/arch", f)
		}
		ps = append(ps, v1.Platform{OS: osName, Architecture: arch})
	}
	return ps, nil
}

func run(ctx context.Context, c config, out io.Writer) error {
	platforms, err := parsePlatforms(c.platforms)
	if err != nil {
		return err
	}
	start := time.Now()
	idx, err := ociimage.Build(ctx, ociimage.Options{
		Version: c.version, Revision: c.revision, Source: c.source, Licenses: c.licenses,
		Created:   time.Unix(c.created, 0),
		Platforms: platforms,
		Binaries:  ociimage.GoBuild{ModuleDir: c.moduleDir, OutDir: c.binDir},
	})
	if err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("index digest: %w", err)
	}
	ref := c.repository + ":" + c.version
	fmt.Fprintf(out, "built %s (%s) in %v\n  index %s\n", ref, c.platforms, time.Since(start).Round(100*time.Millisecond), d)

	if c.layout != "" {
		if err := replaceLayout(c.layout); err != nil {
			return err
		}
		if err := ociimage.WriteLayout(c.layout, idx, ref); err != nil {
			return err
		}
		fmt.Fprintf(out, "  OCI layout %s\n", c.layout)
	}
	if c.tarball != "" {
		if err := os.MkdirAll(filepath.Dir(c.tarball), 0o755); err != nil {
			return err
		}
		if err := ociimage.WriteTarballFile(c.tarball, idx, ref); err != nil {
			return err
		}
		st, err := os.Stat(c.tarball)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  tarball %s (%.1f MiB)\n", c.tarball, float64(st.Size())/(1<<20))
	}
	if c.push != "" {
		pushed, err := ociimage.Push(ctx, idx, c.push+":"+c.version, ociimage.PushOptions{
			Insecure: c.insecure, Keychain: authn.DefaultKeychain,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "pushed %s:%s\n  %s\n  helm: --set image.repository=%s --set image.digest=%s\n",
			c.push, c.version, pushed, c.push, pushed.DigestStr())
	}
	return nil
}

// replaceLayout removes dir only if it is an OCI layout (an oci-layout
// file at its top), so a mistyped -layout cannot delete anything else.
func replaceLayout(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("-layout: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return fmt.Errorf("-layout %s is neither empty nor an OCI layout; not replacing it", dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("-layout: remove the previous layout: %w", err)
	}
	return nil
}
