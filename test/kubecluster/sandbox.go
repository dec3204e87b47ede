package kubecluster

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// PauseImage is the first image of a crosswire image index running
// `crosswire pause`, for Options.Sandbox: the nodes reach no public
// registry for registry.k8s.io/pause, and one image serves for everything.
func PauseImage(idx v1.ImageIndex) (v1.ImageIndex, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("pause image: %w", err)
	}
	if len(m.Manifests) == 0 {
		return nil, fmt.Errorf("pause image: empty index")
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("pause image: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pause image: %w", err)
	}
	cc := cfg.Config
	cc.Cmd = []string{"pause"}
	if img, err = mutate.Config(img, cc); err != nil {
		return nil, fmt.Errorf("pause image: %w", err)
	}
	return mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        img,
		Descriptor: v1.Descriptor{Platform: m.Manifests[0].Platform},
	}), nil
}
