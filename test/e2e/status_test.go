package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
	"github.com/crosswire/crosswire/wgtun"
)

// agentHTTP GETs path from n's agent metrics port, from inside n's
// namespace (the port is the same in every node's network stack).
func agentHTTP(t *testing.T, n *netcluster.Node, path string) (int, string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := netcluster.Do(n.NS, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	url := fmt.Sprintf("http://%s%s", net.JoinHostPort(n.UnderlayIP.String(), strconv.Itoa(cwcluster.MetricsPort)), path)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s in %s: %v", url, n.NS, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// metric returns the value of one sample line (`name{labels}`) of a
// Prometheus text exposition, or fails.
func metric(t *testing.T, body, series string) float64 {
	t.Helper()
	v, err := sample(body, series)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// sample is metric for a condition that may not hold yet.
func sample(body, series string) (float64, error) {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no sample %s in /metrics", series)
}

// metricsRefresh bounds how long after a change the metrics show it: the
// next resync reads the device and the table, and the snapshot scrapes are
// served from is rebuilt at most every agentstatus.DefaultMinRefresh.
const metricsRefresh = 3*resync + agentstatus.DefaultMinRefresh + 2*time.Second

// crosswireStatus runs `crosswire status` in n's namespace and returns its
// output and exit code.
func (e *env) crosswireStatus(t *testing.T, n *netcluster.Node, args ...string) (string, int) {
	t.Helper()
	out, err := netcluster.Exec(n.NS, append([]string{agentBin, "status", "--status-socket", e.StatusSocket(n)}, args...)...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &exit):
		return out, exit.ExitCode()
	}
	t.Fatalf("crosswire status: %v", err)
	return "", -1
}

func (e *env) statusJSON(t *testing.T, n *netcluster.Node) (agentstatus.Report, int) {
	t.Helper()
	out, code := e.crosswireStatus(t, n, "-o", "json")
	// The exit error message goes to stderr after the JSON document.
	var r agentstatus.Report
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&r); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return r, code
}

func peerStates(r agentstatus.Report) map[string]string {
	m := map[string]string{}
	for _, p := range r.Peers {
		m[p.Name] = p.State
	}
	return m
}

// TestStatusAndMetrics checks what an operator and Prometheus see: health
// and readiness, handshakes and bytes (in total, and per peer with
// --metrics-per-peer) and the marking counters growing with traffic,
// `crosswire status` ok with exit 0; then a node with a wrong key shows as
// "handshake stale", a malformed node as rejected, and the command exits
// 1, until the key is right again.
func TestStatusAndMetrics(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1}, "--metrics-per-peer")
	n1, n2, n3 := e.c.Nodes[0], e.c.Nodes[1], e.c.Nodes[2]

	if code, body := agentHTTP(t, n1, "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := agentHTTP(t, n1, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q", code, body)
	}

	_, before := agentHTTP(t, n1, "/metrics")
	time.Sleep(1100 * time.Millisecond) // handshake timestamps have 1 s resolution in the test's eyes
	// A fresh handshake: the initial one may be reused for the traffic.
	for _, n := range []*netcluster.Node{n2, n3} {
		for _, p := range []*netcluster.Pod{n1.Pods[0]} {
			if err := p.Ping(n.Pods[0].IP, 3); err != nil {
				t.Fatal(err)
			}
		}
	}
	crossNodeTraffic(t, e.c)
	// Scrapes are served from what the last resync read: the traffic shows
	// once a resync has seen it.
	grew := func(after, series string) error {
		b, err := sample(before, series)
		if err != nil {
			return err
		}
		a, err := sample(after, series)
		if err != nil {
			return err
		}
		if a <= b {
			return fmt.Errorf("%s did not grow with traffic: %v -> %v", series, b, a)
		}
		return nil
	}
	var after string
	eventually(t, metricsRefresh, "metrics show the traffic", func() error {
		_, after = agentHTTP(t, n1, "/metrics")
		for _, peer := range []string{n2.Name, n3.Name} {
			for _, name := range []string{"crosswire_peer_receive_bytes_total", "crosswire_peer_transmit_bytes_total"} {
				if err := grew(after, fmt.Sprintf(`%s{peer=%q}`, name, peer)); err != nil {
					return err
				}
			}
			s := fmt.Sprintf(`crosswire_peer_last_handshake_seconds{peer=%q}`, peer)
			if hs, err := sample(after, s); err != nil || hs == 0 || time.Since(time.Unix(int64(hs), 0)) > time.Minute {
				return fmt.Errorf("%s = %v (%v): no recent handshake", s, hs, err)
			}
		}
		for _, s := range []string{"crosswire_tunnel_receive_bytes_total", "crosswire_tunnel_transmit_bytes_total", `crosswire_marked_packets_total{family="ipv4"}`} {
			if err := grew(after, s); err != nil {
				return err
			}
		}
		// Both peers handshook within the last minute.
		if v, err := sample(after, `crosswire_peer_handshake_age_seconds_bucket{le="60"}`); err != nil || v != 2 {
			return fmt.Errorf("handshake ages within 60 s: %v (%v), want 2", v, err)
		}
		if v, err := sample(after, `crosswire_peers{state="ok"}`); err != nil || v != 2 {
			return fmt.Errorf(`crosswire_peers{state="ok"} = %v (%v), want 2`, v, err)
		}
		return nil
	})
	if v := metric(t, after, `crosswire_reconcile_total{kind="full"}`); v < 1 {
		t.Errorf("no full reconcile counted: %v", v)
	}
	for _, s := range []string{"crosswire_reconcile_duration_seconds_count", "crosswire_reconcile_errors_total", "crosswire_drift_repairs_total", `crosswire_rejected_nodes{reason="cidr"}`} {
		metric(t, after, s)
	}

	r, code := e.statusJSON(t, n1)
	if code != 0 || !r.Healthy {
		t.Fatalf("status exit %d, healthy %t: %q", code, r.Healthy, r.Problems)
	}
	if got := peerStates(r); len(got) != 2 || got[n2.Name] != agentstatus.StateOK || got[n3.Name] != agentstatus.StateOK {
		t.Fatalf("peer states after traffic: %v", got)
	}
	if r.Sets["remote4"] != 2 || r.Sets["local4"] != 1 || r.MarkCounters["egress4"] == 0 || r.Interface != iface || r.PublicKey != e.keys[n1.Name] {
		t.Fatalf("status: %+v", r)
	}
	text, code := e.crosswireStatus(t, n1)
	t.Logf("crosswire status on %s (exit %d):\n%s", n1.Name, code, text)
	if code != 0 || !strings.Contains(text, "PEER") || strings.Count(text, "  ok\n") != 2 {
		t.Fatalf("text status exit %d:\n%s", code, text)
	}

	// node2 publishes a wrong (valid) key; a malformed Node appears.
	good := e.keys[n2.Name]
	wrongPriv, err := wgtun.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	e.keys[n2.Name] = wrongPriv.PublicKey().String()
	e.writeNodesWithBad(n2)
	eventually(t, 30*time.Second, "node2 reported stale on node1", func() error {
		_ = n1.Pods[0].Ping(n2.Pods[0].IP, 1) // fails: the handshake cannot complete
		r, code := e.statusJSON(t, n1)
		st := peerStates(r)
		if st[n2.Name] != agentstatus.StateHandshakeStale || st["bad-cidr"] != agentstatus.StateRejected || code == 0 {
			return fmt.Errorf("exit %d, states %v", code, st)
		}
		if st[n3.Name] != agentstatus.StateOK {
			return fmt.Errorf("node3 not ok: %v", st)
		}
		return nil
	})
	text, code = e.crosswireStatus(t, n1)
	t.Logf("crosswire status on %s with a wrong key for node2 (exit %d):\n%s", n1.Name, code, text)
	if code != 1 || !strings.Contains(text, "handshake stale") || !strings.Contains(text, "rejected: ") {
		t.Fatalf("text status exit %d:\n%s", code, text)
	}
	eventually(t, metricsRefresh, "metrics show the stale and the rejected node", func() error {
		_, m := agentHTTP(t, n1, "/metrics")
		if v, err := sample(m, `crosswire_peers{state="handshake_stale"}`); err != nil || v != 1 {
			return fmt.Errorf("stale peers metric %v (%v), want 1", v, err)
		}
		if v, err := sample(m, `crosswire_rejected_nodes{reason="cidr"}`); err != nil || v != 1 {
			return fmt.Errorf("rejected cidr metric %v (%v), want 1", v, err)
		}
		return nil
	})
	if code, body := agentHTTP(t, n1, "/readyz"); code != 200 {
		t.Errorf("/readyz with a stale peer = %d %q (the datapath itself is applied)", code, body)
	}

	// The right key again: ok after traffic, exit 0.
	e.keys[n2.Name] = good
	e.writeNodes(e.c.Nodes)
	eventually(t, 30*time.Second, "node2 ok again on node1", func() error {
		if err := n1.Pods[0].Ping(n2.Pods[0].IP, 1); err != nil {
			return err
		}
		r, code := e.statusJSON(t, n1)
		if st := peerStates(r); code != 0 || len(st) != 2 || st[n2.Name] != agentstatus.StateOK {
			return fmt.Errorf("exit %d, states %v, problems %q", code, st, r.Problems)
		}
		return nil
	})
}

// writeNodesWithBad writes every node plus one Node with a malformed pod CIDR.
func (e *env) writeNodesWithBad(_ *netcluster.Node) {
	e.t.Helper()
	e.writeNodes(e.c.Nodes)
	data, err := os.ReadFile(e.nodesFile)
	if err != nil {
		e.t.Fatal(err)
	}
	bad := "- metadata:\n" +
		"    name: bad-cidr\n" +
		"    creationTimestamp: \"2027-01-01T00:00:00Z\"\n" +
		"    annotations:\n" +
		"      crosswire.dev/public-key: \"aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8hISE=\"\n" +
		"  spec:\n" +
		"    podCIDRs: [\"10.244.51.0/33\"]\n"
	out := strings.Replace(string(data), "items:\n", "items:\n"+bad, 1)
	tmp := e.nodesFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.nodesFile); err != nil {
		e.t.Fatal(err)
	}
}
