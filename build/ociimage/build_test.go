package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The same source, toolchain and options give the same index digest: the
// binaries are compiled again into another directory, not reused, and the
// tarballs are byte for byte equal too.
func TestSameInputsSameDigest(t *testing.T) {
	first := builtIndex(t, "1.0.0-test")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	again, err := Build(ctx, testOptions("1.0.0-test", GoBuild{ModuleDir: moduleRoot(t), OutDir: t.TempDir(), Go: goTool()}))
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := digest(t, first), digest(t, again)
	if d1 != d2 {
		t.Fatalf("two builds of the same inputs: %s and %s", d1, d2)
	}
	t1, t2 := tarballSum(t, first), tarballSum(t, again)
	if t1 != t2 {
		t.Errorf("tarballs differ: %x and %x", t1, t2)
	}
	t.Logf("index %s twice; tarball sha256 %x twice", d1, t1)
}

// A different version (same commit) is a different binary and so a
// different layer, not only different labels.
func TestVersionChangesDigest(t *testing.T) {
	a, b := builtIndex(t, "1.0.0-test"), builtIndex(t, "1.0.1-test")
	if digest(t, a) == digest(t, b) {
		t.Fatal("two versions share an index digest")
	}
	for _, p := range DefaultPlatforms() {
		la, lb := onlyLayer(t, imageFor(t, a, p)), onlyLayer(t, imageFor(t, b, p))
		da, _ := la.Digest()
		db, _ := lb.Digest()
		if da == db {
			t.Errorf("%s: same layer %s for two versions: the version is not stamped into the binary", p.String(), da)
		}
	}
}

func TestIndexHoldsBothPlatforms(t *testing.T) {
	// Full validation (validate.Index) runs on the layout read back from
	// disk in TestLayoutReadsBack: the in-memory images of mutate report
	// empty annotation maps where the serialized manifests have none.
	idx := builtIndex(t, "1.0.0-test")
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s", im.MediaType)
	}
	var got []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s without a platform", d.Digest)
		}
		got = append(got, d.Platform.String())
		if d.MediaType != types.OCIManifestSchema1 {
			t.Errorf("%s: media type %s, want an OCI manifest", d.Platform.String(), d.MediaType)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.OS != d.Platform.OS || cfg.Architecture != d.Platform.Architecture {
			t.Errorf("index says %s, config says %s/%s", d.Platform.String(), cfg.OS, cfg.Architecture)
		}
		if m, _ := img.Manifest(); m.Config.MediaType != types.OCIConfigJSON {
			t.Errorf("%s: config media type %s", d.Platform.String(), m.Config.MediaType)
		}
	}
	if !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %v, want linux/amd64 and linux/arm64", got)
	}
	for k, v := range wantLabels("1.0.0-test") {
		if im.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, im.Annotations[k], v)
		}
	}
}

func wantLabels(version string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    "crosswire",
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": testRevision,
		"org.opencontainers.image.source":   testSource,
		"org.opencontainers.image.licenses": "NOASSERTION",
		"org.opencontainers.image.created":  "2024-05-06T07:08:09Z",
	}
}

// Each image is one layer holding exactly the binary and its directories,
// owned by root with fixed modes and the fixed time, and a config that
// runs it with PATH set.
func TestImageContents(t *testing.T) {
	idx := builtIndex(t, "1.0.0-test")
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	for _, p := range DefaultPlatforms() {
		t.Run(p.Architecture, func(t *testing.T) {
			img := imageFor(t, idx, p)
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Config.Entrypoint, []string{"/usr/local/bin/crosswire"}) ||
				!slices.Equal(cfg.Config.Env, []string{"PATH=/usr/local/bin"}) || cfg.Config.User != "" {
				t.Errorf("config entrypoint %q env %q user %q", cfg.Config.Entrypoint, cfg.Config.Env, cfg.Config.User)
			}
			if !maps.Equal(cfg.Config.Labels, wantLabels("1.0.0-test")) {
				t.Errorf("labels %v, want %v", cfg.Config.Labels, wantLabels("1.0.0-test"))
			}
			if !cfg.Created.Equal(testCreated) || len(cfg.History) != 1 || !cfg.History[0].Created.Equal(testCreated) {
				t.Errorf("created %v, history %+v: want %v everywhere", cfg.Created, cfg.History, testCreated)
			}

			entries, binary := readLayer(t, onlyLayer(t, img))
			want := []string{"usr/ dir 755", "usr/local/ dir 755", "usr/local/bin/ dir 755", "usr/local/bin/crosswire file 755"}
			var got []string
			for _, h := range entries {
				kind := map[byte]string{tar.TypeDir: "dir", tar.TypeReg: "file"}[h.Typeflag]
				got = append(got, h.Name+" "+kind+" "+strconv.FormatInt(h.Mode, 8))
				if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(testCreated) {
					t.Errorf("%s: uid %d gid %d (%q/%q) mtime %v; want 0/0, no names, %v", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime, testCreated)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("layer entries %q, want %q", got, want)
			}

			f, err := elf.NewFile(bytes.NewReader(binary))
			if err != nil {
				t.Fatalf("binary is not ELF: %v", err)
			}
			if f.Machine != machines[p.Architecture] {
				t.Errorf("binary machine %v, want %v", f.Machine, machines[p.Architecture])
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
					t.Errorf("binary has %v: not static (CGO must be off: the image has no libc)", prog.Type)
				}
			}
			t.Logf("%s: binary %.1f MiB, layer %.1f MiB compressed", p.String(), float64(len(binary))/(1<<20), float64(layerSize(t, img))/(1<<20))
		})
	}
}

// The binary for this machine's architecture runs from the layer and
// reports the stamped version and revision.
func TestBinaryRunsAndReportsVersion(t *testing.T) {
	for _, version := range []string{"1.0.0-test", "1.0.1-test"} {
		img := imageFor(t, builtIndex(t, version), v1.Platform{OS: "linux", Architecture: runtime.GOARCH})
		_, binary := readLayer(t, onlyLayer(t, img))
		path := filepath.Join(t.TempDir(), "crosswire")
		if err := os.WriteFile(path, binary, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(path, "version").CombinedOutput()
		if err != nil {
			t.Fatalf("crosswire version: %v\n%s", err, out)
		}
		want := "crosswire " + version + " (revision " + testRevision + ", "
		if !strings.HasPrefix(string(out), want) {
			t.Errorf("crosswire version printed %q, want %q...", out, want)
		}
	}
}

func TestOptionsAreChecked(t *testing.T) {
	ctx := context.Background()
	bins := Prebuilt{}
	for name, tc := range map[string]struct {
		o    Options
		want string
	}{
		"no version":       {Options{Revision: "r", Binaries: bins}, "Version is required"},
		"no revision":      {Options{Version: "v", Binaries: bins}, "Revision is required"},
		"no binaries":      {Options{Version: "v", Revision: "r"}, "Binaries is required"},
		"space in version": {Options{Version: "1.0 beta", Revision: "r", Binaries: bins}, "no whitespace"},
		"quote":            {Options{Version: "v", Revision: `r"`, Binaries: bins}, "no whitespace"},
		"windows":          {Options{Version: "v", Revision: "r", Binaries: bins, Platforms: []v1.Platform{{OS: "windows", Architecture: "amd64"}}}, "only linux"},
		"twice":            {Options{Version: "v", Revision: "r", Binaries: bins, Platforms: []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "amd64"}}}, "twice"},
		"missing binary":   {Options{Version: "v", Revision: "r", Binaries: bins}, "no prebuilt binary for linux/amd64"},
	} {
		_, err := Build(ctx, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
}

func digest(t testing.TB, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func tarballSum(t testing.TB, idx v1.ImageIndex) [32]byte {
	t.Helper()
	h := sha256.New()
	if err := WriteTarball(h, idx, "ghcr.io/crosswire/crosswire:1.0.0-test"); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func imageFor(t testing.TB, idx v1.ImageIndex, p v1.Platform) v1.Image {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == p.OS && d.Platform.Architecture == p.Architecture {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no %s image in the index", p.String())
	return nil
}

func onlyLayer(t testing.TB, img v1.Image) v1.Layer {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	if mt, _ := layers[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %s, want %s", mt, types.OCILayer)
	}
	return layers[0]
}

func layerSize(t testing.TB, img v1.Image) int64 {
	t.Helper()
	n, err := onlyLayer(t, img).Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// readLayer returns the layer's tar headers in order and the binary's bytes.
func readLayer(t testing.TB, l v1.Layer) ([]*tar.Header, []byte) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var headers []*tar.Header
	var binary []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		headers = append(headers, h)
		if "/"+h.Name == BinaryPath {
			if binary, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if binary == nil {
		t.Fatalf("layer has no %s", BinaryPath)
	}
	return headers, binary
}
