package soak

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

// Usage is an agent's size at one moment, from its /metrics.
type Usage struct {
	PID        int
	Goroutines float64
	RSS        float64 // bytes
	// HeapInuse tells a leak (live objects) from memory the Go runtime
	// keeps after a peak (RSS only).
	HeapInuse float64
}

// usage scrapes go_goroutines and process_resident_memory_bytes from n's
// agent, inside n's namespace.
func usage(ctx context.Context, n *netcluster.Node) (Usage, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: apiserver.DialerIn(n.NS), DisableKeepAlives: true}}
	url := fmt.Sprintf("http://%s:%d/metrics", n.UnderlayIP, cwcluster.MetricsPort)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Usage{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Usage{}, fmt.Errorf("%s metrics: %w", n.Name, err)
	}
	defer resp.Body.Close()
	var u Usage
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "go_goroutines":
			u.Goroutines = v
			found++
		case "process_resident_memory_bytes":
			u.RSS = v
			found++
		case "go_memstats_heap_inuse_bytes":
			u.HeapInuse = v
		}
	}
	if err := sc.Err(); err != nil {
		return Usage{}, fmt.Errorf("%s metrics: %w", n.Name, err)
	}
	if found != 2 {
		return Usage{}, fmt.Errorf("%s metrics: go_goroutines or process_resident_memory_bytes missing", n.Name)
	}
	return u, nil
}

// ready asks n's agent's /readyz: 200 once its datapath is applied.
func ready(ctx context.Context, n *netcluster.Node) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: apiserver.DialerIn(n.NS), DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:%d/readyz", n.UnderlayIP, cwcluster.MetricsPort), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s readyz: %w", n.Name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s readyz: %s", n.Name, resp.Status)
	}
	return nil
}

// heapProfile saves n's agent's heap profile from its status socket (the
// only place the agent serves pprof) to path.
func heapProfile(ctx context.Context, socket, path string) error {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/debug/pprof/heap", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}
