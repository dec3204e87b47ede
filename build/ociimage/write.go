package ociimage

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// WriteLayout writes idx as an OCI image layout in dir, which must not
// exist or be empty. ref (REPOSITORY:TAG) names the image in index.json.
func WriteLayout(dir string, idx v1.ImageIndex, ref string) error {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("ociimage: layout directory: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("ociimage: layout directory %s is not empty", dir)
	}
	index, err := layoutIndex(idx, ref)
	if err != nil {
		return err
	}
	blobs, err := layoutBlobs(idx)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return fmt.Errorf("ociimage: layout: %w", err)
	}
	for _, b := range blobs {
		if err := writeBlobFile(filepath.Join(dir, "blobs", b.digest.Algorithm, b.digest.Hex), b); err != nil {
			return err
		}
	}
	for name, data := range map[string][]byte{"oci-layout": []byte(ociLayoutFile), "index.json": index} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("ociimage: layout: %w", err)
		}
	}
	return nil
}

func writeBlobFile(path string, b blob) error {
	rc, err := b.open()
	if err != nil {
		return fmt.Errorf("ociimage: blob %s: %w", b.digest, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("ociimage: blob %s: %w", b.digest, err)
	}
	n, err := io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != b.size {
		err = fmt.Errorf("wrote %d bytes, descriptor says %d", n, b.size)
	}
	if err != nil {
		return fmt.Errorf("ociimage: blob %s: %w", b.digest, err)
	}
	return nil
}

// WriteTarball writes the layout WriteLayout would write as one tar
// stream: the format `ctr -n k8s.io images import`, `kind load
// image-archive` and `k3d image import` read. Entries are sorted, with
// uid/gid 0, fixed modes and a zero mtime, so the same index always gives
// the same bytes.
func WriteTarball(w io.Writer, idx v1.ImageIndex, ref string) error {
	index, err := layoutIndex(idx, ref)
	if err != nil {
		return err
	}
	blobs, err := layoutBlobs(idx)
	if err != nil {
		return err
	}
	epoch := time.Unix(0, 0)
	tw := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(header(d, tar.TypeDir, 0o755, 0, epoch)); err != nil {
			return fmt.Errorf("ociimage: tarball: %w", err)
		}
	}
	for _, b := range blobs {
		if err := tarBlob(tw, "blobs/"+b.digest.Algorithm+"/"+b.digest.Hex, b); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"index.json", index}, {"oci-layout", []byte(ociLayoutFile)}} {
		if err := tarBlob(tw, f.name, bytesBlob(f.data)); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("ociimage: tarball: %w", err)
	}
	return nil
}

func tarBlob(tw *tar.Writer, name string, b blob) error {
	rc, err := b.open()
	if err != nil {
		return fmt.Errorf("ociimage: tarball %s: %w", name, err)
	}
	defer rc.Close()
	if err := tw.WriteHeader(header(name, tar.TypeReg, 0o644, b.size, time.Unix(0, 0))); err != nil {
		return fmt.Errorf("ociimage: tarball %s: %w", name, err)
	}
	if _, err := io.Copy(tw, rc); err != nil {
		return fmt.Errorf("ociimage: tarball %s: %w", name, err)
	}
	return nil
}

// WriteTarballFile writes the tarball to path through a temporary file in
// the same directory, so an interrupted build never leaves a truncated
// archive under the final name.
func WriteTarballFile(path string, idx v1.ImageIndex, ref string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".crosswire-image-*.tar")
	if err != nil {
		return fmt.Errorf("ociimage: tarball: %w", err)
	}
	defer os.Remove(f.Name())
	if err := WriteTarball(f, idx, ref); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("ociimage: tarball: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ociimage: tarball: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("ociimage: tarball: %w", err)
	}
	return nil
}
