package apiserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// etcdArgv configures a single-member etcd on the namespace's loopback with
// explicit ports (the defaults, 2379/2380, would collide between parallel
// tests).
func etcdArgv(bin, dataDir, clientURL string, peerPort int) []string {
	peerURL := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))
	return []string{bin,
		"--name=crosswire-test",
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=crosswire-test=" + peerURL,
		"--initial-cluster-state=new",
		// Durability is worthless for a throw-away test store; fsync on every
		// write is most of etcd's latency on a busy CI disk.
		"--unsafe-no-fsync",
		"--log-level=warn",
	}
}

// waitEtcd polls etcd's /health until it reports healthy, etcd exits, or
// etcdTimeout passes.
func (s *Server) waitEtcd(clientURL string) error {
	client := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{DialContext: DialerIn(s.opts.NetNS), DisableKeepAlives: true},
	}
	deadline := time.Now().Add(etcdTimeout)
	var last error
	for time.Now().Before(deadline) {
		if done, err := s.etcd.exited(); done {
			return fmt.Errorf("etcd exited before becoming healthy (%v); last lines of %s:\n%s",
				err, s.etcd.logPath, s.etcd.tail(30))
		}
		last = etcdHealthy(client, clientURL)
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("etcd not healthy after %v: %v; last lines of %s:\n%s",
		etcdTimeout, last, s.etcd.logPath, s.etcd.tail(30))
}

func etcdHealthy(c *http.Client, clientURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd /health: %s: %s", resp.Status, body)
	}
	return nil
}
