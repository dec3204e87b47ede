package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

const testRef = "ghcr.io/crosswire/crosswire:1.0.0-test"

// The layout directory reads back (with go-containerregistry's own layout
// reader) as one named entry whose index is the built one.
func TestLayoutReadsBack(t *testing.T) {
	idx := builtIndex(t, "1.0.0-test")
	dir := filepath.Join(t.TempDir(), "oci")
	if err := WriteLayout(dir, idx, testRef); err != nil {
		t.Fatal(err)
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json lists %d entries, want the one index", len(im.Manifests))
	}
	e := im.Manifests[0]
	if e.Digest != digest(t, idx) {
		t.Errorf("index.json points at %s, want %s", e.Digest, digest(t, idx))
	}
	if e.Annotations["io.containerd.image.name"] != testRef || e.Annotations["org.opencontainers.image.ref.name"] != "1.0.0-test" {
		t.Errorf("index.json annotations %v: containerd would import the image without its name", e.Annotations)
	}
	inner, err := top.ImageIndex(e.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(inner); err != nil {
		t.Fatalf("the layout's index does not validate: %v", err)
	}

	if err := WriteLayout(dir, idx, testRef); err == nil {
		t.Error("WriteLayout over an existing layout succeeded: stale blobs would stay")
	}
	if err := WriteLayout(filepath.Join(t.TempDir(), "x"), idx, "no-tag@"); err == nil {
		t.Error("WriteLayout accepted a malformed image name")
	}
}

// The tarball is the layout directory's files in one sorted tar with
// fixed owners, modes and times.
func TestTarballIsTheLayout(t *testing.T) {
	idx := builtIndex(t, "1.0.0-test")
	dir := filepath.Join(t.TempDir(), "oci")
	if err := WriteLayout(dir, idx, testRef); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "crosswire.tar")
	if err := WriteTarballFile(path, idx, testRef); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		wantMode := int64(0o644)
		if h.Typeflag == tar.TypeDir {
			wantMode = 0o755
		} else if files[h.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Mode != wantMode || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: uid %d gid %d mode %o mtime %v", h.Name, h.Uid, h.Gid, h.Mode, h.ModTime)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %q", names)
	}
	// Every file of the layout directory, and nothing else, with the same
	// bytes.
	onDisk := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		onDisk++
		rel, _ := filepath.Rel(dir, p)
		want, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if got, ok := files[filepath.ToSlash(rel)]; !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: in tarball %v, same bytes %v", rel, ok, bytes.Equal(got, want))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if onDisk != len(files) {
		t.Errorf("tarball has %d files, layout %d", len(files), onDisk)
	}
	// Index, two manifests, two configs, two layers, index.json, oci-layout.
	if len(files) != 9 {
		t.Errorf("tarball files %d, want 9: %q", len(files), names)
	}
	st, _ := os.Stat(path)
	t.Logf("tarball %.1f MiB", float64(st.Size())/(1<<20))
}
