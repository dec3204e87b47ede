package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// binaryLayer is the image's only layer: the directories leading to
// BinaryPath and the binary, owned by root, with mtime, and nothing
// else (no /etc, no shell). Entries are written parent first, which for a
// single path is also sorted order.
func binaryLayer(binary string, mtime time.Time, level int) (v1.Layer, error) {
	f, err := os.Open(binary)
	if err != nil {
		return nil, fmt.Errorf("ociimage: read binary: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ociimage: read binary: %w", err)
	}
	var buf bytes.Buffer
	buf.Grow(int(st.Size()) + 4<<10)
	tw := tar.NewWriter(&buf)
	rel := strings.TrimPrefix(BinaryPath, "/")
	var dirs []string
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	for _, d := range dirs {
		if err := tw.WriteHeader(header(d+"/", tar.TypeDir, 0o755, 0, mtime)); err != nil {
			return nil, fmt.Errorf("ociimage: layer: %w", err)
		}
	}
	if err := tw.WriteHeader(header(rel, tar.TypeReg, 0o755, st.Size(), mtime)); err != nil {
		return nil, fmt.Errorf("ociimage: layer: %w", err)
	}
	if _, err := io.Copy(tw, f); err != nil {
		return nil, fmt.Errorf("ociimage: layer: read binary: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("ociimage: layer: %w", err)
	}
	tarBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressionLevel(level),
		// Digest, layout, tarball and push each read the compressed
		// bytes: compress once.
		tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("ociimage: layer: %w", err)
	}
	return layer, nil
}

// header is a USTAR header with nothing taken from the build machine:
// no user or group names, no access or change times.
func header(name string, typ byte, mode, size int64, mtime time.Time) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		Size:     size,
		ModTime:  mtime,
		Format:   tar.FormatUSTAR,
	}
}
