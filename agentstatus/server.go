package agentstatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crosswire/crosswire/internal/unixsock"
	"github.com/crosswire/crosswire/proxy"
)

// Handler serves /metrics from reg, /healthz (200 while the process
// serves) and /readyz (200 once the datapath was applied after the node
// source delivered its state, and while the last apply succeeded; 503 with
// the reason otherwise).
func Handler(reg prometheus.Gatherer, engine Readiness) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if reason := notReady(engine); reason != "" {
			http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// Readiness is proxy.Engine as /readyz asks it: its apply state without
// the peers, which would cost a copy of every peer per probe.
type Readiness interface {
	ApplyStatus() proxy.Status
}

// notReady explains why the datapath is not ready ("" when it is).
func notReady(engine Readiness) string {
	st := engine.ApplyStatus()
	switch {
	case !st.Known:
		return "node source not synced yet"
	case st.Applies == 0:
		return "datapath not applied yet"
	case !st.Applied:
		return "last apply failed: " + st.LastError
	}
	return ""
}

// StatusHandler serves GET /status (the report as JSON) and Go's profiles
// under /debug/pprof/. Profiles go only on this root-only socket, never on
// the metrics port: they expose memory contents and cost CPU.
func StatusHandler(src *Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		r := src.Report()
		w.Header().Set("Content-Type", "application/json")
		_ = WriteJSON(w, &r)
	})
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// WriteJSON writes r as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ListenStatusSocket creates the unix socket at path: its directory is
// created 0755 if missing, the socket is 0600 from the moment it appears
// and replaces any stale socket left by a previous agent (unixsock.Listen).
// Close removes it.
func ListenStatusSocket(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("status socket directory: %w", err)
	}
	l, err := unixsock.Listen(path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	return &socketListener{Listener: l, path: path}, nil
}

type socketListener struct {
	net.Listener
	path string
}

func (s *socketListener) Close() error {
	err := s.Listener.Close()
	if rmErr := os.Remove(s.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
		err = rmErr
	}
	return err
}

// Serve serves h on l until ctx ends, then shuts the server down.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-errc
	return nil
}

// Fetch reads the report from the agent's status socket.
func Fetch(ctx context.Context, socket string) (*Report, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://crosswire/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent status socket %s: %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("agent status socket %s: %s: %s", socket, resp.Status, body)
	}
	var r Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("agent status socket %s: decode: %w", socket, err)
	}
	return &r, nil
}
