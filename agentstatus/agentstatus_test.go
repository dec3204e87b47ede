package agentstatus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func key(b byte) wgtun.Key {
	var k wgtun.Key
	for i := range k {
		k[i] = b
	}
	return k
}

func TestClassify(t *testing.T) {
	const timeout = 180 * time.Second
	for _, tc := range []struct {
		name      string
		handshake time.Time
		pending   time.Time
		want      string
	}{
		{"fresh handshake", t0.Add(-10 * time.Second), time.Time{}, StateOK},
		{"handshake just inside timeout", t0.Add(-179 * time.Second), time.Time{}, StateOK},
		{"handshake at timeout, quiet", t0.Add(-180 * time.Second), time.Time{}, StateIdle},
		{"never, nothing sent", time.Time{}, time.Time{}, StateIdle},
		{"never, send pending within grace", time.Time{}, t0.Add(-4 * time.Second), StateIdle},
		{"never, send pending for grace", time.Time{}, t0.Add(-StaleGrace), StateHandshakeStale},
		{"expired, send pending long", t0.Add(-10 * time.Minute), t0.Add(-time.Minute), StateHandshakeStale},
		{"recent handshake wins over pending", t0.Add(-time.Second), t0.Add(-time.Minute), StateOK},
	} {
		if got := Classify(t0, tc.handshake, tc.pending, timeout); got != tc.want {
			t.Errorf("%s: Classify = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestTrackerTellsStaleFromIdle(t *testing.T) {
	const timeout = 180 * time.Second
	tr := NewTracker()
	k := key(1)
	obs := func(at time.Duration, hs time.Time, tx uint64) string {
		now := t0.Add(at)
		tr.Observe(now, []wgtun.PeerStats{{Peer: wgtun.Peer{PublicKey: k}, LastHandshake: hs, TxBytes: tx}}, timeout)
		return Classify(now, hs, tr.pendingSince(k), timeout)
	}
	hs := t0
	steps := []struct {
		at   time.Duration
		hs   time.Time
		tx   uint64
		want string
	}{
		{0, hs, 1000, StateOK},
		{100 * time.Second, hs, 5000, StateOK},             // traffic, valid session
		{200 * time.Second, hs, 5000, StateIdle},           // expired, nothing sent: idle
		{300 * time.Second, hs, 5000, StateIdle},           // still quiet
		{301 * time.Second, hs, 5148, StateIdle},           // a send without session: pending, within grace
		{305 * time.Second, hs, 5296, StateIdle},           // 4 s later: still grace
		{306 * time.Second, hs, 5444, StateHandshakeStale}, // 5 s without handshake
		{400 * time.Second, hs, 5444, StateHandshakeStale}, // stays stale until a handshake
		{401 * time.Second, t0.Add(400 * time.Second), 5600, StateOK},
	}
	for i, s := range steps {
		if got := obs(s.at, s.hs, s.tx); got != s.want {
			t.Fatalf("step %d (t+%v): %q, want %q", i, s.at, got, s.want)
		}
	}
	// A new peer (a re-keyed node) that has sent but never handshook is
	// pending from its first observation.
	tr.Observe(t0, []wgtun.PeerStats{{Peer: wgtun.Peer{PublicKey: key(2)}, TxBytes: 148}}, timeout)
	if p := tr.pendingSince(key(2)); !p.Equal(t0) {
		t.Fatalf("new peer with tx and no handshake: pending %v, want %v", p, t0)
	}
	if p := tr.pendingSince(k); !p.IsZero() {
		t.Fatal("peer missing from the device was not forgotten")
	}
}

// The fakes count every call, so tests can tell what a scrape or a report
// read.
type fakeEngine struct {
	st    proxy.Status
	calls int
}

func (f *fakeEngine) Status() proxy.Status { f.calls++; return f.st }

func (f *fakeEngine) ApplyStatus() proxy.Status {
	f.calls++
	st := f.st
	st.Peers = nil
	return st
}

// fakeTunnel: Stats is the live device, LastStats its last own read
// (setRead changes it while the metrics' Run may be reading it).
type fakeTunnel struct {
	stats []wgtun.PeerStats
	err   error

	mu     sync.Mutex
	readAt time.Time
	read   []wgtun.PeerStats
	calls  int
}

func (f *fakeTunnel) Stats() ([]wgtun.PeerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.stats, f.err
}

func (f *fakeTunnel) LastStats() (time.Time, []wgtun.PeerStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.readAt, f.read
}

func (f *fakeTunnel) setRead(at time.Time, read []wgtun.PeerStats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readAt, f.read = at, read
}

type fakeRules struct{ calls int }

func (f *fakeRules) Counters() (map[string]nft.Counter, error) {
	f.calls++
	return map[string]nft.Counter{
		nft.CommentEgress4: {Packets: 42, Bytes: 4200}, nft.CommentEgress6: {Packets: 0},
		nft.CommentTunnelIngress: {Packets: 40}, nft.CommentMSSClamp4: {Packets: 3},
		// Drops: each family of a rule counts under the rule's key.
		nft.CommentLeakGuard: {Packets: 3}, nft.CommentGuard4: {Packets: 2}, nft.CommentGuard6: {Packets: 5},
		nft.CommentStrictIngress6: {Packets: 1}, nft.CommentGuardCluster4: {Packets: 4},
	}, nil
}

func (f *fakeRules) LastReadback() nft.Readback {
	counters, _ := f.Counters()
	return nft.Readback{At: t0, Sizes: map[string]int{nft.SetLocal4: 1, nft.SetRemote4: 2}, Counters: counters}
}

// fixture: node2 ok, node3 stale (sending, never a handshake), node4
// waiting for its key, node5 rejected, node6 idle.
func fixture() (*Source, *fakeEngine, *fakeTunnel) {
	p := netip.MustParsePrefix
	eng := &fakeEngine{st: proxy.Status{
		Known: true, Applied: true, LastApply: t0.Add(-3 * time.Second), LastDuration: 2500 * time.Microsecond,
		Applies: 7, Errors: 1, DriftRepairs: 1, LastRepairs: []string{"policy rule missing"},
		Peers: []proxy.Peer{
			{Name: "node2", PublicKey: key(2), Endpoint: netip.MustParseAddrPort("192.168.77.12:51820"), PodCIDRs: []netip.Prefix{p("10.244.2.0/24")}},
			{Name: "node3", PublicKey: key(3), Endpoint: netip.MustParseAddrPort("192.168.77.13:51820"), PodCIDRs: []netip.Prefix{p("10.244.3.0/24")}},
			{Name: "node4", Endpoint: netip.MustParseAddrPort("192.168.77.14:51820"), PodCIDRs: []netip.Prefix{p("10.244.4.0/24")}},
			{Name: "node6", PublicKey: key(6), Endpoint: netip.MustParseAddrPort("192.168.77.16:51820"), PodCIDRs: []netip.Prefix{p("10.244.6.0/24")}},
		},
	}}
	tun := &fakeTunnel{stats: []wgtun.PeerStats{
		{Peer: wgtun.Peer{PublicKey: key(2), Endpoint: netip.MustParseAddrPort("192.168.77.12:51820")}, LastHandshake: t0.Add(-42 * time.Second), RxBytes: 2048, TxBytes: 3 << 20},
		{Peer: wgtun.Peer{PublicKey: key(3), Endpoint: netip.MustParseAddrPort("192.168.77.13:51820")}, TxBytes: 148},
		{Peer: wgtun.Peer{PublicKey: key(6), Endpoint: netip.MustParseAddrPort("192.168.77.16:51820")}, LastHandshake: t0.Add(-time.Hour), RxBytes: 500, TxBytes: 600},
	}}
	// The device's own reads, a minute apart, the last at t0: node3's send
	// is pending since the first.
	tun.readAt, tun.read = t0, tun.stats
	src := &Source{
		Info:   Info{Node: "node1", Interface: "crosswire0", PublicKey: key(1).String(), ListenPort: 51820, MTU: 1420},
		Engine: eng, Tunnel: tun, Rules: &fakeRules{}, Tracker: NewTracker(),
		Now: func() time.Time { return t0 },
	}
	src.Tracker.Observe(t0.Add(-time.Minute), tun.stats, DefaultHandshakeTimeout)
	src.Tracker.Observe(t0, tun.stats, DefaultHandshakeTimeout)
	src.SetRejected([]controller.Rejection{{Node: "node5", Reason: "pod CIDR 10.244.2.0/24 overlaps 10.244.2.0/24, already claimed by an older node", Group: controller.GroupOverlap}})
	return src, eng, tun
}

func TestReportJSON(t *testing.T) {
	src, _, _ := fixture()
	r := src.Report()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, &r); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"node", "time", "interface", "public_key", "listen_port", "mtu", "strict", "handshake_timeout_seconds", "healthy", "problems", "datapath", "peers", "sets", "mark_counters"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("JSON lacks %q:\n%s", k, buf.String())
		}
	}
	for _, want := range []string{
		`"node": "node1"`, `"strict": false`, `"healthy": false`, `"listen_port": 51820`, `"mtu": 1420`,
		`"handshake_timeout_seconds": 180`,
		`"applied": true`, `"applies": 7`, `"drift_repairs": 1`, `"last_repairs": [` + "\n" + `      "policy rule missing"`,
		`"last_duration_seconds": 0.0025`,
		`"remote4": 2`, `"local6": 0`, `"egress4": 42`, `"tunnel_ingress": 40`,
		`"state": "ok"`, `"state": "handshake stale"`, `"state": "waiting for key"`, `"state": "idle"`, `"state": "rejected"`,
		`"reason": "pod CIDR 10.244.2.0/24 overlaps`, `"handshake_age_seconds": 42`, `"tx_bytes": 3145728`,
		`"pod_cidrs": [` + "\n" + `        "10.244.2.0/24"`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("JSON lacks %s:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "mss") {
		t.Error("MSS clamp counter leaked into mark_counters")
	}
	// Round trip: what `crosswire status` decodes is what the agent built.
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Peers) != 5 || back.Peers[0].Name != "node2" || back.Peers[3].Name != "node5" || back.Healthy {
		t.Fatalf("decoded report: %+v", back)
	}
	wantProblems := []string{
		"peer node3: handshake stale",
		"peer node4: waiting for key",
		"peer node5: rejected: pod CIDR 10.244.2.0/24 overlaps 10.244.2.0/24, already claimed by an older node",
	}
	if strings.Join(back.Problems, "\n") != strings.Join(wantProblems, "\n") {
		t.Fatalf("problems = %q, want %q", back.Problems, wantProblems)
	}
}

func TestReportText(t *testing.T) {
	src, _, _ := fixture()
	r := src.Report()
	var buf bytes.Buffer
	if err := WriteText(&buf, &r); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	want := `node: node1  (UNHEALTHY)
interface: crosswire0
  public key: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=
  listen port: 51820
  mtu: 1420
  strict: false
  wireguard peers configured: 3 (every node)
datapath:
  last apply: ok, 3s ago, took 2.5ms
  applies: 7, errors: 1, drift repairs: 1
  last repair: policy rule missing
  nft sets: local4 1, local6 0, remote4 2, remote6 0
  marked packets: egress4 42, egress6 0, tunnel ingress 40
  dropped packets: leak guard 3, guard table 7, strict ingress 1, strict cluster 4

PEER   ENDPOINT             POD CIDRS      HANDSHAKE  RX        TX        STATE
node2  192.168.77.12:51820  10.244.2.0/24  42s ago    2.00 KiB  3.00 MiB  ok
node3  192.168.77.13:51820  10.244.3.0/24  never      0 B       148 B     handshake stale
node4  192.168.77.14:51820  10.244.4.0/24  -          -         -         waiting for key
node5  -                    -              -          -         -         rejected: pod CIDR 10.244.2.0/24 overlaps 10.244.2.0/24, already claimed by an older node
node6  192.168.77.16:51820  10.244.6.0/24  1h0m ago   500 B     600 B     idle

problems:
  peer node3: handshake stale
  peer node4: waiting for key
  peer node5: rejected: pod CIDR 10.244.2.0/24 overlaps 10.244.2.0/24, already claimed by an older node
`
	if got != want {
		t.Fatalf("text:\n%s\nwant:\n%s", got, want)
	}
}

func TestHealthRule(t *testing.T) {
	okPeer := Peer{Name: "node2", State: StateOK}
	for _, tc := range []struct {
		name    string
		d       Datapath
		peers   []Peer
		healthy bool
	}{
		{"applied, all ok", Datapath{Known: true, Applied: true, Applies: 1}, []Peer{okPeer, {Name: "n", State: StateIdle}}, true},
		{"applied, no peers", Datapath{Known: true, Applied: true, Applies: 1}, nil, true},
		{"source not synced", Datapath{}, nil, false},
		{"known, not applied yet", Datapath{Known: true}, []Peer{okPeer}, false},
		{"last apply failed", Datapath{Known: true, Applies: 3, LastError: "boom"}, []Peer{okPeer}, false},
		{"waiting for key", Datapath{Known: true, Applied: true, Applies: 1}, []Peer{okPeer, {State: StateWaitingForKey}}, false},
		{"stale", Datapath{Known: true, Applied: true, Applies: 1}, []Peer{{State: StateHandshakeStale}}, false},
		{"rejected", Datapath{Known: true, Applied: true, Applies: 1}, []Peer{{State: StateRejected, Reason: "x"}}, false},
	} {
		r := Report{Datapath: tc.d, Peers: tc.peers}
		r.finish()
		if r.Healthy != tc.healthy || (len(r.Problems) == 0) != tc.healthy {
			t.Errorf("%s: healthy %t problems %q, want healthy %t", tc.name, r.Healthy, r.Problems, tc.healthy)
		}
	}
}

func TestReportSurvivesReadErrors(t *testing.T) {
	src, _, tun := fixture()
	tun.err = errors.New("uapi down")
	r := src.Report()
	if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "uapi down") {
		t.Fatalf("errors = %q", r.Errors)
	}
	if len(r.Peers) != 5 {
		t.Fatalf("peers lost on a device read error: %+v", r.Peers)
	}
}

func TestMetrics(t *testing.T) {
	src, _, _ := fixture()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, src, MetricsOptions{PerPeer: true})
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveApply(proxy.ApplyResult{Full: true, Duration: 3 * time.Millisecond})
	m.ObserveApply(proxy.ApplyResult{Full: true, Duration: time.Millisecond, Drift: true})
	m.ObserveApply(proxy.ApplyResult{Full: false, Duration: time.Millisecond, Err: errors.New("x")})

	want := `
# HELP crosswire_peers Other nodes by state: ok, idle, waiting_for_key, handshake_stale, rejected.
# TYPE crosswire_peers gauge
crosswire_peers{state="handshake_stale"} 1
crosswire_peers{state="idle"} 1
crosswire_peers{state="ok"} 1
crosswire_peers{state="rejected"} 1
crosswire_peers{state="waiting_for_key"} 1
# HELP crosswire_peer_last_handshake_seconds Unix time of the peer's last WireGuard handshake (0: never); with --metrics-per-peer.
# TYPE crosswire_peer_last_handshake_seconds gauge
crosswire_peer_last_handshake_seconds{peer="node2"} 1.772366358e+09
crosswire_peer_last_handshake_seconds{peer="node3"} 0
crosswire_peer_last_handshake_seconds{peer="node6"} 1.7723628e+09
# HELP crosswire_peer_receive_bytes_total Bytes received from the peer through the tunnel (WireGuard rx_bytes); with --metrics-per-peer.
# TYPE crosswire_peer_receive_bytes_total counter
crosswire_peer_receive_bytes_total{peer="node2"} 2048
crosswire_peer_receive_bytes_total{peer="node3"} 0
crosswire_peer_receive_bytes_total{peer="node6"} 500
# HELP crosswire_peer_transmit_bytes_total Bytes sent to the peer through the tunnel, handshakes included (WireGuard tx_bytes); with --metrics-per-peer.
# TYPE crosswire_peer_transmit_bytes_total counter
crosswire_peer_transmit_bytes_total{peer="node2"} 3.145728e+06
crosswire_peer_transmit_bytes_total{peer="node3"} 148
crosswire_peer_transmit_bytes_total{peer="node6"} 600
# HELP crosswire_marked_packets_total Pod packets marked for the tunnel by the egress rule of each family, as of the last resync (resets when the table is replaced).
# TYPE crosswire_marked_packets_total counter
crosswire_marked_packets_total{family="ipv4"} 42
crosswire_marked_packets_total{family="ipv6"} 0
# HELP crosswire_dropped_packets_total Pod packets dropped rather than sent in clear, by rule (leak_guard, guard_table: crosswire's routing or table was changed by another program; strict_ingress: plaintext from a remote pod CIDR; strict_cluster: to a cluster address no set knows), as of the last resync (resets when a table is replaced).
# TYPE crosswire_dropped_packets_total counter
crosswire_dropped_packets_total{rule="guard_table"} 7
crosswire_dropped_packets_total{rule="leak_guard"} 3
crosswire_dropped_packets_total{rule="strict_cluster"} 4
crosswire_dropped_packets_total{rule="strict_ingress"} 1
# HELP crosswire_rejected_nodes Nodes left out of the desired state, by reason group.
# TYPE crosswire_rejected_nodes gauge
crosswire_rejected_nodes{reason="cidr"} 0
crosswire_rejected_nodes{reason="duplicate_key"} 0
crosswire_rejected_nodes{reason="endpoint"} 0
crosswire_rejected_nodes{reason="key"} 0
crosswire_rejected_nodes{reason="other"} 0
crosswire_rejected_nodes{reason="overlap"} 1
# HELP crosswire_peer_handshake_age_seconds Age of each configured peer's last WireGuard handshake at the device's last read (peers without one are not counted).
# TYPE crosswire_peer_handshake_age_seconds histogram
crosswire_peer_handshake_age_seconds_bucket{le="5"} 0
crosswire_peer_handshake_age_seconds_bucket{le="15"} 0
crosswire_peer_handshake_age_seconds_bucket{le="30"} 0
crosswire_peer_handshake_age_seconds_bucket{le="60"} 1
crosswire_peer_handshake_age_seconds_bucket{le="120"} 1
crosswire_peer_handshake_age_seconds_bucket{le="180"} 1
crosswire_peer_handshake_age_seconds_bucket{le="300"} 1
crosswire_peer_handshake_age_seconds_bucket{le="900"} 1
crosswire_peer_handshake_age_seconds_bucket{le="3600"} 2
crosswire_peer_handshake_age_seconds_bucket{le="21600"} 2
crosswire_peer_handshake_age_seconds_bucket{le="86400"} 2
crosswire_peer_handshake_age_seconds_bucket{le="+Inf"} 2
crosswire_peer_handshake_age_seconds_sum 3642
crosswire_peer_handshake_age_seconds_count 2
# HELP crosswire_tunnel_receive_bytes_total Bytes received through the tunnel from all peers (WireGuard rx_bytes summed over peers, kept when a peer leaves).
# TYPE crosswire_tunnel_receive_bytes_total counter
crosswire_tunnel_receive_bytes_total 2548
# HELP crosswire_tunnel_transmit_bytes_total Bytes sent through the tunnel to all peers, handshakes included (WireGuard tx_bytes summed over peers, kept when a peer leaves).
# TYPE crosswire_tunnel_transmit_bytes_total counter
crosswire_tunnel_transmit_bytes_total 3.146476e+06
# HELP crosswire_wireguard_peers_configured Peers on the WireGuard device at its last read (with --on-demand-peers, those with recent traffic).
# TYPE crosswire_wireguard_peers_configured gauge
crosswire_wireguard_peers_configured 3
# HELP crosswire_wireguard_last_read_timestamp_seconds Unix time of the device read the peer metrics describe (normally the last resync; 0: none yet).
# TYPE crosswire_wireguard_last_read_timestamp_seconds gauge
crosswire_wireguard_last_read_timestamp_seconds 1.7723664e+09
# HELP crosswire_reconcile_total Datapath applies by kind: incremental (a change) or full (first apply, resync, retry).
# TYPE crosswire_reconcile_total counter
crosswire_reconcile_total{kind="full"} 2
crosswire_reconcile_total{kind="incremental"} 1
# HELP crosswire_reconcile_errors_total Datapath applies that failed (retried with backoff).
# TYPE crosswire_reconcile_errors_total counter
crosswire_reconcile_errors_total 1
# HELP crosswire_drift_repairs_total Full applies that found the kernel differing from the desired state and repaired it.
# TYPE crosswire_drift_repairs_total counter
crosswire_drift_repairs_total 1
`
	names := []string{"crosswire_peers", "crosswire_peer_last_handshake_seconds", "crosswire_peer_receive_bytes_total",
		"crosswire_peer_transmit_bytes_total", "crosswire_marked_packets_total", "crosswire_dropped_packets_total", "crosswire_rejected_nodes",
		"crosswire_peer_handshake_age_seconds", "crosswire_tunnel_receive_bytes_total", "crosswire_tunnel_transmit_bytes_total",
		"crosswire_wireguard_peers_configured", "crosswire_wireguard_last_read_timestamp_seconds",
		"crosswire_reconcile_total", "crosswire_reconcile_errors_total", "crosswire_drift_repairs_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Fatalf("duration histogram: %d series", n)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	eng := &fakeEngine{}
	h := Handler(prometheus.NewRegistry(), eng)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	for _, tc := range []struct {
		st   proxy.Status
		code int
		body string
	}{
		{proxy.Status{}, 503, "node source not synced"},
		{proxy.Status{Known: true}, 503, "not applied yet"},
		{proxy.Status{Known: true, Applies: 2, LastError: "nft: boom"}, 503, "last apply failed: nft: boom"},
		{proxy.Status{Known: true, Applies: 2, Applied: true}, 200, "ok"},
	} {
		eng.st = tc.st
		if code, body := get("/readyz"); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("/readyz with %+v = %d %q, want %d %q", tc.st, code, body, tc.code, tc.body)
		}
	}
	if code, body := get("/metrics"); code != 200 || strings.Contains(body, "crosswire_") {
		t.Fatalf("/metrics of an empty registry: %d %q", code, body)
	}
}

func TestStatusSocket(t *testing.T) {
	src, _, _ := fixture()
	path := filepath.Join(t.TempDir(), "run", "crosswire", "status.sock")
	// A stale socket file from a dead agent is replaced.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ListenStatusSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v", fi.Mode(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, StatusHandler(src)) }()
	r, err := Fetch(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Node != "node1" || len(r.Peers) != 5 || r.Healthy {
		t.Fatalf("fetched %+v", r)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after shutdown: %v", err)
	}
	if _, err := Fetch(context.Background(), path); err == nil {
		t.Fatal("Fetch without an agent succeeded")
	}
}

// Profiles are served on the root-only status socket and nowhere else.
func TestProfilesOnlyOnStatusSocket(t *testing.T) {
	src, eng, _ := fixture()
	get := func(h http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(StatusHandler(src), "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("status socket goroutine profile: %d %.80q", code, body)
	}
	if code, body := get(StatusHandler(src), "/debug/pprof/heap?debug=1"); code != 200 || !strings.Contains(body, "heap profile:") {
		t.Fatalf("status socket heap profile: %d %.80q", code, body)
	}
	if code, _ := get(Handler(prometheus.NewRegistry(), eng), "/debug/pprof/"); code != 404 {
		t.Fatalf("metrics port serves profiles: %d", code)
	}
}

// With on-demand peers the report says so, and tells configured peers from
// known ones.
func TestReportConfiguredPeers(t *testing.T) {
	src, _, _ := fixture()
	src.Info.OnDemandPeers = true
	r := src.Report()
	if !r.OnDemandPeers || r.PeersConfigured != 3 {
		t.Fatalf("on_demand_peers %v, peers_configured %d; want true, 3", r.OnDemandPeers, r.PeersConfigured)
	}
	configured := map[string]bool{}
	for _, p := range r.Peers {
		configured[p.Name] = p.Configured
	}
	if !configured["node2"] || !configured["node6"] || configured["node4"] || configured["node5"] {
		t.Fatalf("configured by peer: %v", configured)
	}
	var buf strings.Builder
	if err := WriteText(&buf, &r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "wireguard peers configured: 3 (on demand)") {
		t.Fatalf("text lacks the on-demand line:\n%s", buf.String())
	}
}

// refusingTunnel is an on-demand device that refused activations.
type refusingTunnel struct {
	*fakeTunnel
	refused map[string]uint64
}

func (r refusingTunnel) ActivationsRefused() map[string]uint64 { return r.refused }

// With on-demand peers the device's refused activations reach the report,
// the text and the metric (every reason, 0 when not refused); without, the
// report leaves them out.
func TestActivationsRefused(t *testing.T) {
	src, _, tun := fixture()
	src.Tunnel = refusingTunnel{fakeTunnel: tun, refused: map[string]uint64{wgtun.RefusedMalformed: 7, wgtun.RefusedReplay: 2}}
	if r := src.Report(); r.ActivationsRefused != nil {
		t.Fatalf("refusals reported without on-demand peers: %v", r.ActivationsRefused)
	}
	src.Info.OnDemandPeers = true
	r := src.Report()
	if r.ActivationsRefused[wgtun.RefusedMalformed] != 7 || r.ActivationsRefused[wgtun.RefusedReplay] != 2 {
		t.Fatalf("report: %v", r.ActivationsRefused)
	}
	var buf strings.Builder
	if err := WriteText(&buf, &r); err != nil {
		t.Fatal(err)
	}
	if want := "activations refused: malformed 7, mac1 0, unexpected 0, pending_cap 0, rate_limited 0, replay 2"; !strings.Contains(buf.String(), want) {
		t.Fatalf("text lacks %q:\n%s", want, buf.String())
	}
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg, src, MetricsOptions{}); err != nil {
		t.Fatal(err)
	}
	want := `# HELP crosswire_ondemand_activations_refused_total With --on-demand-peers: datagrams from unconfigured peers' addresses refused a peer activation, by reason (replay: copies of recent handshake initiations, dropped).
# TYPE crosswire_ondemand_activations_refused_total counter
crosswire_ondemand_activations_refused_total{reason="mac1"} 0
crosswire_ondemand_activations_refused_total{reason="malformed"} 7
crosswire_ondemand_activations_refused_total{reason="pending_cap"} 0
crosswire_ondemand_activations_refused_total{reason="rate_limited"} 0
crosswire_ondemand_activations_refused_total{reason="replay"} 2
crosswire_ondemand_activations_refused_total{reason="unexpected"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "crosswire_ondemand_activations_refused_total"); err != nil {
		t.Fatal(err)
	}
}
