package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// profiler saves the agent's Go profiles from its status socket (the
// agent serves /debug/pprof/ there) into the results directory, named by
// cluster size, for `go tool pprof`.
type profiler struct {
	socket, dir string
	client      *http.Client
}

func newProfiler(socket, dir string) *profiler {
	return &profiler{socket: socket, dir: dir, client: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}}
}

// save fetches /debug/pprof/<query> into <dir>/<file>.
func (p *profiler) save(ctx context.Context, query, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/debug/pprof/"+query, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", query, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", query, resp.Status)
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(p.dir, file))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", query, err)
	}
	return f.Close()
}

// cpu starts a CPU profile of d in the background; wait returns its error.
func (p *profiler) cpu(ctx context.Context, d time.Duration, file string) (wait func() error) {
	done := make(chan error, 1)
	go func() {
		done <- p.save(ctx, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), file)
	}()
	return func() error { return <-done }
}
