package agentstatus

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// DefaultMinRefresh is how often at most the metrics' snapshot is rebuilt.
const DefaultMinRefresh = 5 * time.Second

// MetricsOptions select what the metrics export.
type MetricsOptions struct {
	// PerPeer adds three series per peer (last handshake, bytes each
	// way). Every node has every other node as a peer, so a cluster of N
	// nodes exports 3N² of them: opt-in.
	PerPeer bool
	// MinRefresh bounds how often the snapshot is rebuilt (default
	// DefaultMinRefresh).
	MinRefresh time.Duration
}

// Metrics are the agent's Prometheus metrics. Reconcile metrics are counted
// as the engine applies (ObserveApply). Everything else is served from a
// snapshot of what the datapath last read (Source.Snapshot), rebuilt by Run
// after applies and at most every MinRefresh: a scrape reads neither the
// device nor the table, changes no state, and costs the same at 10 peers
// as at 5000 unless per-peer series are on.
type Metrics struct {
	src        *Source
	perPeer    bool
	minRefresh time.Duration
	kick       chan struct{}
	view       atomic.Pointer[view]

	reconciles *prometheus.CounterVec
	errors     prometheus.Counter
	duration   prometheus.Histogram
	drift      prometheus.Counter
}

// handshakeAgeBuckets cover WireGuard's timers (rekey after 120 s of
// traffic, sessions rejected after 180 s) and the idle peers beyond.
var handshakeAgeBuckets = []float64{5, 15, 30, 60, 120, 180, 300, 900, 3600, 6 * 3600, 24 * 3600}

var (
	descConfigured = prometheus.NewDesc("crosswire_wireguard_peers_configured",
		"Peers on the WireGuard device at its last read (with --on-demand-peers, those with recent traffic).", nil, nil)
	descRead = prometheus.NewDesc("crosswire_wireguard_last_read_timestamp_seconds",
		"Unix time of the device read the peer metrics describe (normally the last resync; 0: none yet).", nil, nil)
	descPeers = prometheus.NewDesc("crosswire_peers",
		"Other nodes by state: ok, idle, waiting_for_key, handshake_stale, rejected.", []string{"state"}, nil)
	descHandshakeAge = prometheus.NewDesc("crosswire_peer_handshake_age_seconds",
		"Age of each configured peer's last WireGuard handshake at the device's last read (peers without one are not counted).", nil, nil)
	descRxTotal = prometheus.NewDesc("crosswire_tunnel_receive_bytes_total",
		"Bytes received through the tunnel from all peers (WireGuard rx_bytes summed over peers, kept when a peer leaves).", nil, nil)
	descTxTotal = prometheus.NewDesc("crosswire_tunnel_transmit_bytes_total",
		"Bytes sent through the tunnel to all peers, handshakes included (WireGuard tx_bytes summed over peers, kept when a peer leaves).", nil, nil)
	descHandshake = prometheus.NewDesc("crosswire_peer_last_handshake_seconds",
		"Unix time of the peer's last WireGuard handshake (0: never); with --metrics-per-peer.", []string{"peer"}, nil)
	descRx = prometheus.NewDesc("crosswire_peer_receive_bytes_total",
		"Bytes received from the peer through the tunnel (WireGuard rx_bytes); with --metrics-per-peer.", []string{"peer"}, nil)
	descTx = prometheus.NewDesc("crosswire_peer_transmit_bytes_total",
		"Bytes sent to the peer through the tunnel, handshakes included (WireGuard tx_bytes); with --metrics-per-peer.", []string{"peer"}, nil)
	descMarked = prometheus.NewDesc("crosswire_marked_packets_total",
		"Pod packets marked for the tunnel by the egress rule of each family, as of the last resync (resets when the table is replaced).", []string{"family"}, nil)
	descDropped = prometheus.NewDesc("crosswire_dropped_packets_total",
		"Pod packets dropped rather than sent in clear, by rule (leak_guard, guard_table: crosswire's routing or table was changed by another program; strict_ingress: plaintext from a remote pod CIDR; strict_cluster: to a cluster address no set knows), as of the last resync (resets when a table is replaced).", []string{"rule"}, nil)
	descRefused = prometheus.NewDesc("crosswire_ondemand_activations_refused_total",
		"With --on-demand-peers: datagrams from unconfigured peers' addresses refused a peer activation, by reason (replay: copies of recent handshake initiations, dropped).", []string{"reason"}, nil)
	descRejected = prometheus.NewDesc("crosswire_rejected_nodes",
		"Nodes left out of the desired state, by reason group.", []string{"reason"}, nil)
)

// NewMetrics registers the agent's metrics on reg (use a private
// registry) and builds the first snapshot from src; Run keeps it current.
func NewMetrics(reg prometheus.Registerer, src *Source, opts MetricsOptions) (*Metrics, error) {
	m := &Metrics{
		src: src, perPeer: opts.PerPeer, minRefresh: opts.MinRefresh, kick: make(chan struct{}, 1),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crosswire_reconcile_total",
			Help: "Datapath applies by kind: incremental (a change) or full (first apply, resync, retry).",
		}, []string{"kind"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crosswire_reconcile_errors_total",
			Help: "Datapath applies that failed (retried with backoff).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crosswire_reconcile_duration_seconds",
			Help:    "Duration of datapath applies.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9), // 0.5 ms .. 33 s
		}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crosswire_drift_repairs_total",
			Help: "Full applies that found the kernel differing from the desired state and repaired it.",
		}),
	}
	if m.minRefresh <= 0 {
		m.minRefresh = DefaultMinRefresh
	}
	m.reconciles.WithLabelValues("incremental")
	m.reconciles.WithLabelValues("full")
	m.Refresh()
	for _, c := range []prometheus.Collector{m.reconciles, m.errors, m.duration, m.drift, (*collector)(m)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ObserveApply counts one engine apply (proxy.Engine.OnApply) and asks Run
// for a new snapshot.
func (m *Metrics) ObserveApply(r proxy.ApplyResult) {
	kind := "incremental"
	if r.Full {
		kind = "full"
	}
	m.reconciles.WithLabelValues(kind).Inc()
	m.duration.Observe(r.Duration.Seconds())
	if r.Err != nil {
		m.errors.Inc()
	}
	if r.Drift {
		m.drift.Inc()
	}
	select {
	case m.kick <- struct{}{}:
	default: // one is pending already
	}
}

// Run keeps the snapshot current until ctx ends: it rebuilds it after
// applies, and when the device or the table was read since (a read outside
// an apply: handshakes initiated after the first, the on-demand idle
// check), at most every MinRefresh. An apply during the wait is taken at
// its end.
func (m *Metrics) Run(ctx context.Context) error {
	tick := time.NewTicker(m.minRefresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
		case <-tick.C:
			if m.src.readTimes() == m.view.Load().reads {
				continue
			}
		}
		m.Refresh()
		t := time.NewTimer(m.minRefresh)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Refresh rebuilds the snapshot now. It reads no kernel state.
func (m *Metrics) Refresh() {
	reads := m.src.readTimes()
	r, read := m.src.snapshot()
	v := &view{
		reads: reads, read: read, configured: r.PeersConfigured,
		states: map[string]int{}, rejected: map[controller.ReasonGroup]int{},
		ageBuckets: make(map[float64]uint64, len(handshakeAgeBuckets)),
		marked:     map[string]uint64{},
		dropped:    map[string]uint64{},
	}
	for _, b := range handshakeAgeBuckets {
		v.ageBuckets[b] = 0 // an empty bucket is exported too
	}
	if m.src.Tracker != nil {
		v.rx, v.tx = m.src.Tracker.Totals()
	}
	for _, p := range r.Peers {
		v.states[p.State]++
		if p.State == StateRejected {
			g := controller.ReasonGroup(p.ReasonGroup)
			if !slices.Contains(controller.ReasonGroups(), g) {
				g = controller.GroupOther // a label value is never free-form
			}
			v.rejected[g]++
		}
		if p.HandshakeAgeSeconds != nil {
			age := *p.HandshakeAgeSeconds
			v.ageCount++
			v.ageSum += age
			for _, b := range handshakeAgeBuckets {
				if age <= b {
					v.ageBuckets[b]++
				}
			}
		}
		if !m.perPeer || p.PublicKey == "" {
			continue
		}
		ps := peerSeries{name: p.Name, rx: float64(p.RxBytes), tx: float64(p.TxBytes)}
		if p.LastHandshake != nil {
			ps.handshake = float64(p.LastHandshake.UnixNano()) / 1e9
		}
		v.peers = append(v.peers, ps)
	}
	if m.perPeer {
		v.pqPeers = pqPeerSeries(r.Peers)
	}
	// Both families always: 0 until the table was read back.
	v.marked["ipv4"], v.marked["ipv6"] = r.MarkCounters["egress4"], r.MarkCounters["egress6"]
	for _, k := range DropCounterKeys {
		v.dropped[k] = r.DropCounters[k]
	}
	m.view.Store(v)
}

// view is what a scrape exports, computed when the snapshot is rebuilt.
type view struct {
	reads      readTimes // what the snapshot was built from
	read       time.Time // the device read; zero if none
	configured int
	states     map[string]int
	rejected   map[controller.ReasonGroup]int
	ageCount   uint64
	ageSum     float64
	ageBuckets map[float64]uint64 // cumulative
	rx, tx     uint64
	marked     map[string]uint64 // by family
	dropped    map[string]uint64 // by rule: DropCounterKeys
	peers      []peerSeries      // only with PerPeer
	pqPeers    []pqSeries        // only with PerPeer and --post-quantum
}

type peerSeries struct {
	name              string
	handshake, rx, tx float64
}

// Label is a peer state as a metric label value (spaces become _).
func Label(state string) string { return strings.ReplaceAll(state, " ", "_") }

// collector exports the current view.
type collector Metrics

func (c *collector) descs() []*prometheus.Desc {
	d := []*prometheus.Desc{descConfigured, descRead, descPeers, descHandshakeAge, descRxTotal, descTxTotal, descMarked, descDropped, descRejected, descRefused}
	if c.perPeer {
		d = append(d, descHandshake, descRx, descTx)
	}
	if c.src.PQ != nil {
		d = append(d, pqDescs...)
		if c.perPeer {
			d = append(d, pqPeerDescs...)
		}
	}
	return d
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	v := c.view.Load()
	read := 0.0
	if !v.read.IsZero() {
		read = float64(v.read.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descConfigured, prometheus.GaugeValue, float64(v.configured))
	ch <- prometheus.MustNewConstMetric(descRead, prometheus.GaugeValue, read)
	for _, s := range States {
		ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(v.states[s]), Label(s))
	}
	ch <- prometheus.MustNewConstHistogram(descHandshakeAge, v.ageCount, v.ageSum, v.ageBuckets)
	ch <- prometheus.MustNewConstMetric(descRxTotal, prometheus.CounterValue, float64(v.rx))
	ch <- prometheus.MustNewConstMetric(descTxTotal, prometheus.CounterValue, float64(v.tx))
	for _, g := range controller.ReasonGroups() {
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.GaugeValue, float64(v.rejected[g]), string(g))
	}
	// The device's refusal counters are atomics, read at the scrape: every
	// reason, 0 without on-demand peers, so that rates and alerts need no
	// absent() case.
	refused := c.src.activationsRefused()
	for _, reason := range wgtun.RefusalReasons {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(refused[reason]), reason)
	}
	for family, n := range v.marked {
		ch <- prometheus.MustNewConstMetric(descMarked, prometheus.CounterValue, float64(n), family)
	}
	for rule, n := range v.dropped {
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(n), rule)
	}
	for _, p := range v.peers {
		ch <- prometheus.MustNewConstMetric(descHandshake, prometheus.GaugeValue, p.handshake, p.name)
		ch <- prometheus.MustNewConstMetric(descRx, prometheus.CounterValue, p.rx, p.name)
		ch <- prometheus.MustNewConstMetric(descTx, prometheus.CounterValue, p.tx, p.name)
	}
	c.collectPQ(ch, v)
}
