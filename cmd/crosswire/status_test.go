package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crosswire/crosswire/agentstatus"
)

// serveReport serves a fixed report on a status socket, as the agent would.
func serveReport(t *testing.T, r agentstatus.Report) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "status.sock")
	l, err := agentstatus.ListenStatusSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agentstatus.Serve(ctx, l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_ = agentstatus.WriteJSON(w, &r)
		}))
	}()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func TestStatusCommandExitRule(t *testing.T) {
	healthy := agentstatus.Report{Node: "node1", Healthy: true, Problems: []string{},
		Datapath: agentstatus.Datapath{Known: true, Applied: true, Applies: 1},
		Peers:    []agentstatus.Peer{{Name: "node2", State: agentstatus.StateOK, PodCIDRs: []string{"10.244.2.0/24"}}}}
	stale := healthy
	stale.Healthy, stale.Problems = false, []string{"peer node2: handshake stale"}
	stale.Peers = []agentstatus.Peer{{Name: "node2", State: agentstatus.StateHandshakeStale}}

	for _, tc := range []struct {
		name   string
		r      agentstatus.Report
		output string
		want   string
		fail   bool
	}{
		{"healthy text", healthy, "text", "node2  -         10.244.2.0/24  never      0 B  0 B  ok", false},
		{"healthy json", healthy, "json", `"state": "ok"`, false},
		{"stale text", stale, "text", "handshake stale", true},
		{"stale json", stale, "json", `"healthy": false`, true},
	} {
		var out bytes.Buffer
		err := runStatus(context.Background(), &out, serveReport(t, tc.r), tc.output)
		if (err != nil) != tc.fail || (tc.fail && !errors.Is(err, errUnhealthy)) {
			t.Errorf("%s: err = %v, want failure %t", tc.name, err, tc.fail)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: output lacks %q:\n%s", tc.name, tc.want, out.String())
		}
	}
	if err := runStatus(context.Background(), &bytes.Buffer{}, filepath.Join(t.TempDir(), "none.sock"), "text"); err == nil {
		t.Error("no agent: no error")
	}
	if err := runStatus(context.Background(), &bytes.Buffer{}, "x", "yaml"); err == nil {
		t.Error("-o yaml accepted")
	}
}
