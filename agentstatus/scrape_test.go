package agentstatus

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// bigSource is a node with n peers, all on the device, read at t0 with
// handshakes of every age.
func bigSource(n int) (*Source, *fakeEngine, *fakeTunnel, *fakeRules) {
	eng := &fakeEngine{st: proxy.Status{Known: true, Applied: true, Applies: 1, LastApply: t0}}
	tun := &fakeTunnel{readAt: t0}
	for i := range n {
		var k wgtun.Key
		binary.BigEndian.PutUint32(k[:], uint32(i+1))
		k[31] = 0xff
		pfx := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		eng.st.Peers = append(eng.st.Peers, proxy.Peer{Name: fmt.Sprintf("node-%05d", i), PublicKey: k,
			Endpoint: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}), 51820), PodCIDRs: []netip.Prefix{pfx}})
		tun.read = append(tun.read, wgtun.PeerStats{Peer: wgtun.Peer{PublicKey: k}, LastHandshake: t0.Add(-time.Duration(i%400) * time.Second),
			RxBytes: uint64(1000 * i), TxBytes: uint64(2000 * i)})
	}
	tun.stats = tun.read
	rules := &fakeRules{}
	src := &Source{Info: Info{Node: "self"}, Engine: eng, Tunnel: tun, Rules: rules, Tracker: NewTracker(), Now: func() time.Time { return t0 }}
	src.Tracker.Observe(t0, tun.read, DefaultHandshakeTimeout)
	return src, eng, tun, rules
}

// TestScrapeReadsNothing: a scrape is served from the snapshot: it calls
// neither the device, nor the table, nor the engine, and however often it
// comes, it does not move the tracker. Neither does `crosswire status`'s
// fresh report.
func TestScrapeReadsNothing(t *testing.T) {
	for _, perPeer := range []bool{false, true} {
		t.Run(fmt.Sprintf("perPeer=%t", perPeer), func(t *testing.T) {
			src, eng, tun := fixture()
			rules := src.Rules.(*fakeRules)
			reg := prometheus.NewRegistry()
			if _, err := NewMetrics(reg, src, MetricsOptions{PerPeer: perPeer}); err != nil {
				t.Fatal(err)
			}
			rx, tx := src.Tracker.Totals()
			eng.calls, tun.calls, rules.calls = 0, 0, 0

			// The live device now shows node6 (idle, last handshake an
			// hour ago) sending without a handshake: an observation of it
			// would start node6's stale clock.
			tun.stats[2].TxBytes += 148
			for range 20 {
				if _, err := reg.Gather(); err != nil {
					t.Fatal(err)
				}
			}
			if eng.calls+tun.calls+rules.calls != 0 {
				t.Fatalf("scrapes called the engine %d, the device %d, the table %d times; want none", eng.calls, tun.calls, rules.calls)
			}
			var r Report
			for range 5 {
				r = src.Report()
			}
			if p := src.Tracker.pendingSince(key(6)); !p.IsZero() {
				t.Fatalf("scrapes or status reports advanced the tracker: node6 pending since %v", p)
			}
			if r2, t2 := src.Tracker.Totals(); r2 != rx || t2 != tx {
				t.Fatalf("scrapes or status reports changed the byte totals: %d/%d, were %d/%d", r2, t2, rx, tx)
			}
			if got := gathered(t, reg, "crosswire_peers", `state="handshake_stale"`); got != 1 {
				t.Fatalf("stale peers after scrapes: %v, want 1 (node3 only)", got)
			}
			for _, p := range r.Peers {
				if p.Name == "node6" && p.State != StateIdle {
					t.Fatalf("status report: node6 %q, want idle", p.State)
				}
			}
		})
	}
}

// gathered returns the value of metric{labels} (labels as in the text
// format, "" for none) as a scrape sees it.
func gathered(t *testing.T, reg *prometheus.Registry, metric, labels string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			if strings.Join(ls, ",") == labels {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("%s{%s} not exported", metric, labels)
	return 0
}

// TestMetricsPerPeerOptIn: by default the metrics are aggregates, the same
// number of series at 3 peers as at 300; per-peer series come only with
// PerPeer, three per peer with a key.
func TestMetricsPerPeerOptIn(t *testing.T) {
	series := func(n int, perPeer bool) int {
		src, _, _, _ := bigSource(n)
		reg := prometheus.NewRegistry()
		if _, err := NewMetrics(reg, src, MetricsOptions{PerPeer: perPeer}); err != nil {
			t.Fatal(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "crosswire_peer_") && mf.GetName() != "crosswire_peer_handshake_age_seconds" && !perPeer {
				t.Errorf("per-peer metric %s exported by default", mf.GetName())
			}
			total += len(mf.GetMetric())
		}
		if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
			t.Fatalf("lint: %v %v", problems, err)
		}
		return total
	}
	if a, b := series(3, false), series(300, false); a != b {
		t.Errorf("default series: %d at 3 peers, %d at 300; want the same", a, b)
	}
	if a, b := series(3, true), series(300, true); b-a != 3*297 {
		t.Errorf("per-peer series: %d at 3 peers, %d at 300; want 3 more per peer", a, b)
	}
}

// TestMetricsRefreshAfterApply: the snapshot changes when Run rebuilds it
// after an apply or a new read of the device, not when scraped.
func TestMetricsRefreshAfterApply(t *testing.T) {
	src, _, tun, _ := bigSource(3)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, src, MetricsOptions{MinRefresh: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	configured := func() float64 {
		return gathered(t, reg, "crosswire_wireguard_peers_configured", "")
	}
	if got := configured(); got != 3 {
		t.Fatalf("configured %v, want 3", got)
	}
	// A resync read the device again; until the apply is reported the
	// metrics stay as they were.
	tun.setRead(t0.Add(30*time.Second), tun.read[:1])
	if got := configured(); got != 3 {
		t.Fatalf("configured %v before the apply was reported, want 3 (a scrape rebuilt the snapshot)", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	m.ObserveApply(proxy.ApplyResult{Full: true})
	deadline := time.Now().Add(10 * time.Second)
	for configured() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("configured %v 10 s after the apply, want 1", configured())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := gathered(t, reg, "crosswire_wireguard_last_read_timestamp_seconds", ""); got != float64(t0.Unix()+30) {
		t.Fatalf("last read %v, want %d", got, t0.Unix()+30)
	}

	// A read outside an apply (the on-demand idle check, handshakes
	// initiated after the first apply) is picked up too.
	tun.setRead(t0.Add(40*time.Second), nil)
	deadline = time.Now().Add(10 * time.Second)
	for configured() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("configured %v 10 s after a device read, want 0", configured())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTrackerTotals: the byte totals grow with every peer's counters, keep
// what a removed peer carried, and count a re-added peer's reset counters
// from zero.
func TestTrackerTotals(t *testing.T) {
	tr := NewTracker()
	ps := func(k byte, rx, tx uint64) wgtun.PeerStats {
		return wgtun.PeerStats{Peer: wgtun.Peer{PublicKey: key(k)}, RxBytes: rx, TxBytes: tx}
	}
	steps := []struct {
		peers  []wgtun.PeerStats
		rx, tx uint64
	}{
		{[]wgtun.PeerStats{ps(1, 100, 200), ps(2, 10, 20)}, 110, 220},
		{[]wgtun.PeerStats{ps(1, 150, 260), ps(2, 10, 20)}, 160, 280},
		{[]wgtun.PeerStats{ps(1, 170, 300)}, 180, 320},              // peer 2 left: its bytes stay
		{[]wgtun.PeerStats{ps(1, 170, 300), ps(2, 5, 7)}, 185, 327}, // peer 2 again, from 0
		{[]wgtun.PeerStats{ps(1, 100, 300), ps(2, 6, 7)}, 286, 327}, // peer 1 re-added between reads
		{[]wgtun.PeerStats{ps(1, 100, 300), ps(2, 6, 7)}, 286, 327}, // nothing moved
		{nil, 286, 327}, // all gone
	}
	for i, s := range steps {
		tr.Observe(t0.Add(time.Duration(i)*time.Second), s.peers, DefaultHandshakeTimeout)
		if rx, tx := tr.Totals(); rx != s.rx || tx != s.tx {
			t.Fatalf("step %d: totals %d/%d, want %d/%d", i, rx, tx, s.rx, s.tx)
		}
	}
}

type fakeReader struct {
	fn func(time.Time, []wgtun.PeerStats)
}

func (f *fakeReader) OnRead(fn func(time.Time, []wgtun.PeerStats)) { f.fn = fn }

// TestWatchObservesOwnReads: Watch feeds the tracker with the device's own
// reads.
func TestWatchObservesOwnReads(t *testing.T) {
	tr := NewTracker()
	dev := &fakeReader{}
	tr.Watch(dev, DefaultHandshakeTimeout)
	dev.fn(t0, []wgtun.PeerStats{{Peer: wgtun.Peer{PublicKey: key(3)}, TxBytes: 148}})
	if p := tr.pendingSince(key(3)); !p.Equal(t0) {
		t.Fatalf("pending since %v after a watched read, want %v", p, t0)
	}
}

// BenchmarkScrape is one GET /metrics (gather and encode) at 100, 1000 and
// 5000 peers: by default flat in the number of peers, with per-peer series
// linear. BenchmarkSnapshotRefresh is the rebuild behind it, once per apply
// and at most every DefaultMinRefresh, off the datapath.
func BenchmarkScrape(b *testing.B) {
	for _, perPeer := range []bool{false, true} {
		for _, n := range []int{100, 1000, 5000} {
			b.Run(fmt.Sprintf("perPeer=%t/peers=%d", perPeer, n), func(b *testing.B) {
				src, eng, _, _ := bigSource(n)
				reg := prometheus.NewRegistry()
				if _, err := NewMetrics(reg, src, MetricsOptions{PerPeer: perPeer}); err != nil {
					b.Fatal(err)
				}
				h := Handler(reg, eng)
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				b.ReportAllocs()
				for b.Loop() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatal(rec.Code)
					}
				}
			})
		}
	}
}

func BenchmarkSnapshotRefresh(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			src, _, _, _ := bigSource(n)
			m, err := NewMetrics(prometheus.NewRegistry(), src, MetricsOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				m.Refresh()
			}
		})
	}
}

// BenchmarkTrackerObserve is the tracker's share of a device read (it runs
// in the device's read, while the device's writes wait).
func BenchmarkTrackerObserve(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			_, _, tun, _ := bigSource(n)
			tr := NewTracker()
			at := t0
			b.ReportAllocs()
			for b.Loop() {
				at = at.Add(30 * time.Second)
				tr.Observe(at, tun.read, DefaultHandshakeTimeout)
			}
		})
	}
}
