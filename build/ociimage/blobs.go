package ociimage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// blob is one content-addressed file of an OCI image layout.
type blob struct {
	digest v1.Hash
	size   int64
	open   func() (io.ReadCloser, error)
}

func bytesBlob(b []byte) blob {
	h, n, _ := v1.SHA256(bytes.NewReader(b))
	return blob{digest: h, size: n, open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

// layoutBlobs lists every blob of idx (the index, each image's manifest,
// config and layers) once, sorted by digest, so every writer emits them in
// the same order.
func layoutBlobs(idx v1.ImageIndex) ([]blob, error) {
	byDigest := map[v1.Hash]blob{}
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("ociimage: index manifest: %w", err)
	}
	b := bytesBlob(raw)
	byDigest[b.digest] = b
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("ociimage: index manifest: %w", err)
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("ociimage: image %s: %w", d.Digest, err)
		}
		for _, get := range []func() ([]byte, error){img.RawManifest, img.RawConfigFile} {
			raw, err := get()
			if err != nil {
				return nil, fmt.Errorf("ociimage: image %s: %w", d.Digest, err)
			}
			b := bytesBlob(raw)
			byDigest[b.digest] = b
		}
		layers, err := img.Layers()
		if err != nil {
			return nil, fmt.Errorf("ociimage: image %s layers: %w", d.Digest, err)
		}
		for _, l := range layers {
			h, err := l.Digest()
			if err != nil {
				return nil, fmt.Errorf("ociimage: layer digest: %w", err)
			}
			size, err := l.Size()
			if err != nil {
				return nil, fmt.Errorf("ociimage: layer size: %w", err)
			}
			byDigest[h] = blob{digest: h, size: size, open: l.Compressed}
		}
	}
	blobs := make([]blob, 0, len(byDigest))
	for _, b := range byDigest {
		blobs = append(blobs, b)
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].digest.String() < blobs[j].digest.String() })
	return blobs, nil
}

// Annotations on index.json's entry that name the image on import:
// containerd takes io.containerd.image.name as the full reference (ctr,
// kind and k3d import through it); the OCI ref.name is the tag alone.
const (
	containerdImageName = "io.containerd.image.name"
	ociRefName          = "org.opencontainers.image.ref.name"
)

// layoutIndex is the layout's index.json: one entry, the image index,
// named ref (a tagged reference such as ghcr.io/crosswire/crosswire:0.1.0).
func layoutIndex(idx v1.ImageIndex, ref string) ([]byte, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("ociimage: image name %q (want REPOSITORY:TAG): %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, fmt.Errorf("ociimage: index digest: %w", err)
	}
	size, err := idx.Size()
	if err != nil {
		return nil, fmt.Errorf("ociimage: index size: %w", err)
	}
	mt, err := idx.MediaType()
	if err != nil {
		return nil, fmt.Errorf("ociimage: index media type: %w", err)
	}
	top := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mt,
			Size:      size,
			Digest:    d,
			Annotations: map[string]string{
				containerdImageName: tag.Name(),
				ociRefName:          tag.TagStr(),
			},
		}},
	}
	return json.Marshal(top)
}

// ociLayoutFile marks a directory as an OCI image layout.
const ociLayoutFile = `{"imageLayoutVersion":"1.0.0"}`
