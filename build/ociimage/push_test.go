package ociimage

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// countingTransport proves Push sends through the caller's transport.
type countingTransport struct {
	n    atomic.Int64
	base http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

// Push sends both images and the index to an in-process registry over
// plain HTTP, through the given transport; what the registry then serves
// by tag and by digest is the built index.
func TestPushToPlainHTTPRegistry(t *testing.T) {
	idx := builtIndex(t, "1.0.0-test")
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	tr := &countingTransport{base: http.DefaultTransport}

	ref := host + "/net/crosswire:1.0.0-test"
	pushed, err := Push(context.Background(), idx, ref, PushOptions{Insecure: true, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	if tr.n.Load() == 0 {
		t.Error("the custom transport carried no request")
	}
	want := digest(t, idx)
	if pushed.String() != host+"/net/crosswire@"+want.String() {
		t.Errorf("Push returned %s, want %s/net/crosswire@%s", pushed, host, want)
	}

	for _, r := range []string{ref, pushed.String()} {
		parsed, err := name.ParseReference(r, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Index(parsed, remote.WithTransport(tr))
		if err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		if d := digest(t, got); d != want {
			t.Errorf("registry serves %s as %s, want %s", r, d, want)
		}
	}
	// What a node pulls: its platform's image, with the built layer.
	tag, _ := name.NewTag(ref, name.Insecure)
	img, err := remote.Image(tag, remote.WithTransport(tr), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	pulled, _ := onlyLayer(t, img).Digest()
	built, _ := onlyLayer(t, imageFor(t, idx, v1.Platform{OS: "linux", Architecture: "arm64"})).Digest()
	if pulled != built {
		t.Errorf("arm64 layer pulled %s, built %s", pulled, built)
	}

	if _, err := Push(context.Background(), idx, host+"/net/crosswire@"+want.String(), PushOptions{Insecure: true, Transport: tr}); err == nil {
		t.Error("Push accepted a digest reference: it needs a tag to name what it pushes")
	}
}
