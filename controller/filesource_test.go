package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/crosswire/crosswire/proxy"
)

const (
	fsInterval = 20 * time.Millisecond
	// quiet is how long a test waits to be sure that no update comes: many
	// poll intervals.
	quiet = 12 * fsInterval
)

// writeFile replaces path atomically, as editors and config-map mounts do,
// so that the poller never sees a half-written file.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

type runner struct {
	t       *testing.T
	updates chan State
	done    chan error
	cancel  context.CancelFunc
}

func startFileSource(t *testing.T, fs *FileSource) *runner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{t: t, updates: make(chan State, 100), done: make(chan error, 1), cancel: cancel}
	go func() { r.done <- fs.Run(ctx, Materialize(func(st State) { r.updates <- st })) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return r
}

func (r *runner) expectUpdate(what string, want State) {
	r.t.Helper()
	select {
	case st := <-r.updates:
		if !stateEqual(st, want) {
			r.t.Fatalf("%s: update\n%s\nwant\n%s", what, fmtState(st), fmtState(want))
		}
	case <-time.After(5 * time.Second):
		r.t.Fatalf("%s: no update", what)
	}
}

func (r *runner) expectNone(what string) {
	r.t.Helper()
	select {
	case st := <-r.updates:
		r.t.Fatalf("%s: unexpected update\n%s", what, fmtState(st))
	case <-time.After(quiet):
	}
}

const fileV1 = `apiVersion: v1
kind: NodeList
items:
- metadata:
    name: me
  spec: {podCIDR: 10.244.0.0/24}
- metadata:
    name: peer-1
    annotations:
      crosswire.dev/public-key: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=
  spec: {podCIDR: 10.244.1.0/24}
  status:
    addresses: [{type: InternalIP, address: 192.168.77.11}]
`

const fileV2 = fileV1 + `- metadata:
    name: peer-2
    annotations:
      crosswire.dev/endpoint: 192.168.77.12:4000
  spec: {podCIDR: 10.244.2.0/24}
`

var (
	stateV1 = State{SelfFound: true, Local: pfx("10.244.0.0/24"), Peers: []proxy.Peer{
		{Name: "peer-1", PublicKey: pubKey(1), Endpoint: ap("192.168.77.11:51820"), PodCIDRs: pfx("10.244.1.0/24")},
	}}
	stateV2 = State{SelfFound: true, Local: pfx("10.244.0.0/24"), Peers: []proxy.Peer{
		{Name: "peer-1", PublicKey: pubKey(1), Endpoint: ap("192.168.77.11:51820"), PodCIDRs: pfx("10.244.1.0/24")},
		{Name: "peer-2", Endpoint: ap("192.168.77.12:4000"), PodCIDRs: pfx("10.244.2.0/24")},
	}}
)

func TestFileSourceRun(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodes.yaml")
	core, logs := observer.New(zapcore.DebugLevel)
	r := startFileSource(t, &FileSource{Path: path, Self: "me", DefaultPort: 51820, Interval: fsInterval, Log: zap.New(core)})

	r.expectNone("file missing at start")
	if n := logs.FilterMessage("nodes file unusable; keeping the last good state").Len(); n != 1 {
		t.Errorf("missing file logged %d times, want once", n)
	}

	writeFile(t, path, fileV1)
	r.expectUpdate("first good file", stateV1)
	r.expectNone("nothing changed")

	writeFile(t, path, fileV1)
	r.expectNone("same content rewritten")

	writeFile(t, path, fileV2)
	r.expectUpdate("peer added", stateV2)

	logs.TakeAll()
	writeFile(t, path, "kind: NodeList\nitems: [this is not")
	r.expectNone("garbage")
	if n := logs.FilterMessage("nodes file unusable; keeping the last good state").Len(); n != 1 {
		t.Errorf("garbage logged %d times, want once", n)
	}

	writeFile(t, path, "")
	r.expectNone("empty file must not drop the peers")
	writeFile(t, path, "kind: NodeList\nitems: []\n")
	// An explicit empty list is a valid state: every peer goes, and (not
	// strict) this node's own pod CIDRs too.
	r.expectUpdate("explicit empty list", State{})

	writeFile(t, path, "{")
	r.expectNone("garbage again")
	writeFile(t, path, fileV1)
	r.expectUpdate("good file after garbage", stateV1)

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r.expectNone("file removed")
	writeFile(t, path, fileV1)
	r.expectNone("same good file back after removal: state already in force")
	writeFile(t, path, fileV2)
	r.expectUpdate("change after removal", stateV2)

	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
		r.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestFileSourceLogsRejections(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodes.json")
	writeFile(t, path, `{"kind":"NodeList","items":[{"metadata":{"name":"bad","annotations":{"crosswire.dev/public-key":"x"}}}]}`)
	core, logs := observer.New(zapcore.DebugLevel)
	r := startFileSource(t, &FileSource{Path: path, Self: "me", Interval: fsInterval, Log: zap.New(core)})
	r.expectUpdate("file with a bad node", State{Rejected: []Rejection{{"bad", "annotation crosswire.dev/public-key: not base64: illegal base64 data at input byte 0", GroupKey}}})
	// The rejected node's name and the reason must be in the entry, under
	// whatever field names.
	if logs.FilterMessage("node rejected").Filter(func(e observer.LoggedEntry) bool {
		m := e.ContextMap()
		var name, reason bool
		for _, v := range m {
			name = name || v == "bad"
			reason = reason || strings.Contains(fmt.Sprint(v), "not base64")
		}
		return name && reason
	}).Len() != 1 {
		t.Errorf("rejection not logged: %v", logs.All())
	}
	if logs.FilterMessage("this node is not in the nodes file; no local pod CIDRs").Len() != 1 {
		t.Errorf("missing self not logged: %v", logs.All())
	}
}

func TestFileSourceCancel(t *testing.T) {
	// A nil logger, a long interval and a missing file: Run must still
	// return as soon as ctx is cancelled.
	fs := &FileSource{Path: filepath.Join(t.TempDir(), "absent"), Interval: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fs.Run(ctx, Materialize(func(State) { t.Error("update called") })) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if fs.Log != nil {
		t.Errorf("Run modified its FileSource")
	}
}
