package agentstatus

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// Metrics are the agent's Prometheus metrics. Reconcile metrics are counted
// as the engine applies (ObserveApply); everything else is read from the
// device and the table when scraped (a Collector, no polling).
type Metrics struct {
	reconciles *prometheus.CounterVec
	errors     prometheus.Counter
	duration   prometheus.Histogram
	drift      prometheus.Counter
}

var (
	descConfigured = prometheus.NewDesc("crosswire_wireguard_peers_configured",
		"Peers on the WireGuard device now (with --on-demand-peers, those with recent traffic).", nil, nil)
	descPeers = prometheus.NewDesc("crosswire_peers",
		"Other nodes by state: ok, idle, waiting_for_key, handshake_stale, rejected.", []string{"state"}, nil)
	descHandshake = prometheus.NewDesc("crosswire_peer_last_handshake_seconds",
		"Unix time of the peer's last WireGuard handshake (0: never).", []string{"peer"}, nil)
	descRx = prometheus.NewDesc("crosswire_peer_receive_bytes_total",
		"Bytes received from the peer through the tunnel (WireGuard rx_bytes).", []string{"peer"}, nil)
	descTx = prometheus.NewDesc("crosswire_peer_transmit_bytes_total",
		"Bytes sent to the peer through the tunnel, handshakes included (WireGuard tx_bytes).", []string{"peer"}, nil)
	descMarked = prometheus.NewDesc("crosswire_marked_packets_total",
		"Pod packets marked for the tunnel by the egress rule of each family (resets when the table is replaced).", []string{"family"}, nil)
	descRefused = prometheus.NewDesc("crosswire_ondemand_activations_refused_total",
		"With --on-demand-peers: datagrams from unconfigured peers' addresses refused a peer activation, by reason (replay: copies of recent handshake initiations, dropped).", []string{"reason"}, nil)
	descRejected = prometheus.NewDesc("crosswire_rejected_nodes",
		"Nodes left out of the desired state, by reason group.", []string{"reason"}, nil)
)

// NewMetrics registers the agent's metrics on reg (use a private
// registry); src is read at every scrape.
func NewMetrics(reg prometheus.Registerer, src *Source) (*Metrics, error) {
	m := &Metrics{
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
	m.reconciles.WithLabelValues("incremental")
	m.reconciles.WithLabelValues("full")
	for _, c := range []prometheus.Collector{m.reconciles, m.errors, m.duration, m.drift, &collector{src: src}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ObserveApply counts one engine apply (proxy.Engine.OnApply).
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
}

// Label is a peer state as a metric label value (spaces become _).
func Label(state string) string { return strings.ReplaceAll(state, " ", "_") }

type collector struct{ src *Source }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConfigured, descPeers, descHandshake, descRx, descTx, descMarked, descRejected, descRefused} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := c.src.Report()
	states := map[string]int{}
	rejected := map[controller.ReasonGroup]int{}
	for _, p := range r.Peers {
		states[p.State]++
		if p.State == StateRejected {
			g := controller.ReasonGroup(p.ReasonGroup)
			if !slices.Contains(controller.ReasonGroups(), g) {
				g = controller.GroupOther // a label value is never free-form
			}
			rejected[g]++
		}
		if p.PublicKey == "" {
			continue
		}
		hs := 0.0
		if p.LastHandshake != nil {
			hs = float64(p.LastHandshake.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descHandshake, prometheus.GaugeValue, hs, p.Name)
		ch <- prometheus.MustNewConstMetric(descRx, prometheus.CounterValue, float64(p.RxBytes), p.Name)
		ch <- prometheus.MustNewConstMetric(descTx, prometheus.CounterValue, float64(p.TxBytes), p.Name)
	}
	ch <- prometheus.MustNewConstMetric(descConfigured, prometheus.GaugeValue, float64(r.PeersConfigured))
	for _, s := range States {
		ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(states[s]), Label(s))
	}
	for _, g := range controller.ReasonGroups() {
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.GaugeValue, float64(rejected[g]), string(g))
	}
	// Every reason, 0 without on-demand peers, so that rates and alerts
	// need no absent() case.
	for _, reason := range wgtun.RefusalReasons {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(r.ActivationsRefused[reason]), reason)
	}
	for key, family := range map[string]string{"egress4": "ipv4", "egress6": "ipv6"} {
		if v, ok := r.MarkCounters[key]; ok {
			ch <- prometheus.MustNewConstMetric(descMarked, prometheus.CounterValue, float64(v), family)
		}
	}
}
