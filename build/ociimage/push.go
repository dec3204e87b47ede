package ociimage

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PushOptions tune Push.
type PushOptions struct {
	// Insecure allows plain HTTP to any registry (go-containerregistry
	// already uses HTTP for localhost, loopback and RFC 1918 addresses).
	Insecure bool
	// Transport carries the requests (a custom DialContext for a registry
	// inside a test network, for example); nil means remote's default.
	Transport http.RoundTripper
	// Keychain supplies credentials; nil means anonymous. Use
	// authn.DefaultKeychain for ~/.docker/config.json.
	Keychain authn.Keychain
	// Remote options are applied after the ones above.
	Remote []remote.Option
}

// Push uploads idx and its images to ref (REPOSITORY:TAG) and returns the
// pushed index by digest (REPOSITORY@sha256:...), what the chart's
// image.digest pins.
func Push(ctx context.Context, idx v1.ImageIndex, ref string, o PushOptions) (name.Digest, error) {
	var nameOpts []name.Option
	if o.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	tag, err := name.NewTag(ref, nameOpts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("ociimage: push reference %q (want REPOSITORY:TAG): %w", ref, err)
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if o.Transport != nil {
		opts = append(opts, remote.WithTransport(o.Transport))
	}
	if o.Keychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(o.Keychain))
	}
	opts = append(opts, o.Remote...)
	if err := remote.WriteIndex(tag, idx, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("ociimage: push %s: %w", tag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("ociimage: index digest: %w", err)
	}
	return tag.Context().Digest(d.String()), nil
}
