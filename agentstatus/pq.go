package agentstatus

import (
	"encoding/base64"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crosswire/crosswire/pqpsk"
)

// PQ is the post-quantum key manager (pqpsk.Manager); nil when
// --post-quantum is off.
type PQ interface {
	Status() []pqpsk.PeerStatus
	StateCounts() map[pqpsk.State]int
	Counters() pqpsk.Counters
}

// PostQuantum is the report's post-quantum section (docs/post-quantum.md).
type PostQuantum struct {
	Mode                   string  `json:"mode"`
	RotateSeconds          float64 `json:"rotate_seconds"`
	FailClosedAfterSeconds float64 `json:"fail_closed_after_seconds"`
	Exchanges              uint64  `json:"exchanges"`
	FailClosed             uint64  `json:"fail_closed"`
	RejectedMessages       uint64  `json:"rejected_messages"`
}

// PeerPQ is a peer's post-quantum state.
type PeerPQ struct {
	// State: pending, pq, classical or closed (pqpsk.State).
	State string `json:"state"`
	// Epoch counts the PSKs of the current chain (0: none yet).
	Epoch uint64 `json:"epoch"`
	// PSKAgeSeconds is the time since the last agreement; absent if none.
	PSKAgeSeconds *float64 `json:"psk_age_seconds,omitempty"`
	Reason        string   `json:"reason,omitempty"`
}

// addPQ fills the post-quantum parts of r.
func (s *Source) addPQ(r *Report) {
	if s.PQ == nil {
		return
	}
	c := s.PQ.Counters()
	var rej uint64
	for _, n := range c.Rejected {
		rej += n
	}
	r.PostQuantum = &PostQuantum{
		Mode: s.Info.PostQuantum, RotateSeconds: s.Info.PQRotate.Seconds(),
		FailClosedAfterSeconds: 2 * s.Info.PQRotate.Seconds(),
		Exchanges:              c.Exchanges, FailClosed: c.FailClosed, RejectedMessages: rej,
	}
	byKey := map[string]pqpsk.PeerStatus{}
	for _, st := range s.PQ.Status() {
		byKey[base64.StdEncoding.EncodeToString(st.Key[:])] = st
	}
	for i := range r.Peers {
		st, ok := byKey[r.Peers[i].PublicKey]
		if !ok || r.Peers[i].PublicKey == "" {
			continue
		}
		p := &PeerPQ{State: string(st.State), Epoch: st.Epoch, Reason: st.Reason}
		if st.Age > 0 {
			a := st.Age.Seconds()
			p.PSKAgeSeconds = &a
		}
		r.Peers[i].PQ = p
	}
}

// pqProblems: a failed-closed peer makes the node unhealthy.
func pqProblems(r *Report) []string {
	var out []string
	for _, p := range r.Peers {
		if p.PQ != nil && p.PQ.State == string(pqpsk.StateClosed) {
			out = append(out, fmt.Sprintf("peer %s: post-quantum closed (traffic dropped): %s", p.Name, p.PQ.Reason))
		}
	}
	return out
}

// writePQText renders the post-quantum section of `crosswire status`.
func writePQText(b *strings.Builder, r *Report) error {
	q := r.PostQuantum
	if q == nil {
		return nil
	}
	fmt.Fprintf(b, "\npost-quantum: %s (rotate %s, fail closed after %s)\n", q.Mode,
		time.Duration(q.RotateSeconds*float64(time.Second)), time.Duration(q.FailClosedAfterSeconds*float64(time.Second)))
	fmt.Fprintf(b, "  exchanges: %d, fail closed: %d, rejected messages: %d\n", q.Exchanges, q.FailClosed, q.RejectedMessages)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tPQ\tEPOCH\tPSK AGE")
	for _, p := range r.Peers {
		if p.PQ == nil {
			continue
		}
		state := p.PQ.State
		if p.PQ.Reason != "" && p.PQ.State != string(pqpsk.StatePQ) {
			state += ": " + p.PQ.Reason
		}
		ageText := "-"
		if p.PQ.PSKAgeSeconds != nil {
			ageText = age(time.Duration(*p.PQ.PSKAgeSeconds * float64(time.Second)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", p.Name, state, p.PQ.Epoch, ageText)
	}
	return tw.Flush()
}

var (
	descPQPeers = prometheus.NewDesc("crosswire_pq_peers",
		"Peers by post-quantum state: pending, pq, classical, closed (only with --post-quantum).", []string{"state"}, nil)
	descPQExchanges = prometheus.NewDesc("crosswire_pq_exchanges_total",
		"Post-quantum PSKs agreed, with any peer, in either role.", nil, nil)
	descPQFailClosed = prometheus.NewDesc("crosswire_pq_fail_closed_total",
		"Times a peer was failed closed for want of a fresh post-quantum PSK.", nil, nil)
	descPQRejected = prometheus.NewDesc("crosswire_pq_rejected_messages_total",
		"Key-exchange messages dropped (malformed, unauthenticated, replayed or out of place) and attempts abandoned.", nil, nil)
	descPQEpoch = prometheus.NewDesc("crosswire_pq_psk_epoch",
		"Epoch of the peer's current post-quantum PSK (0: none agreed), as of the metrics' snapshot; with --metrics-per-peer.", []string{"peer"}, nil)
	descPQAge = prometheus.NewDesc("crosswire_pq_psk_age_seconds",
		"Seconds since the peer's post-quantum PSK was agreed (absent: none), as of the metrics' snapshot; with --metrics-per-peer.", []string{"peer"}, nil)
)

var (
	pqDescs     = []*prometheus.Desc{descPQPeers, descPQExchanges, descPQFailClosed, descPQRejected}
	pqPeerDescs = []*prometheus.Desc{descPQEpoch, descPQAge}
)

type pqSeries struct {
	name  string
	epoch float64
	age   *float64
}

// pqPeerSeries are the per-peer post-quantum series of a report.
func pqPeerSeries(peers []Peer) []pqSeries {
	var out []pqSeries
	for _, p := range peers {
		if p.PQ != nil {
			out = append(out, pqSeries{name: p.Name, epoch: float64(p.PQ.Epoch), age: p.PQ.PSKAgeSeconds})
		}
	}
	return out
}

// collectPQ exports the post-quantum metrics: the state counts and totals
// read from the manager at the scrape (atomics: the cost does not grow
// with the peers), the per-peer series from the snapshot.
func (c *collector) collectPQ(ch chan<- prometheus.Metric, v *view) {
	if c.src.PQ == nil {
		return
	}
	counts := c.src.PQ.StateCounts()
	for _, s := range pqpsk.States {
		ch <- prometheus.MustNewConstMetric(descPQPeers, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
	t := c.src.PQ.Counters()
	var rej uint64
	for _, n := range t.Rejected {
		rej += n
	}
	ch <- prometheus.MustNewConstMetric(descPQExchanges, prometheus.CounterValue, float64(t.Exchanges))
	ch <- prometheus.MustNewConstMetric(descPQFailClosed, prometheus.CounterValue, float64(t.FailClosed))
	ch <- prometheus.MustNewConstMetric(descPQRejected, prometheus.CounterValue, float64(rej))
	if !c.perPeer {
		return
	}
	for _, p := range v.pqPeers {
		ch <- prometheus.MustNewConstMetric(descPQEpoch, prometheus.GaugeValue, p.epoch, p.name)
		if p.age != nil {
			ch <- prometheus.MustNewConstMetric(descPQAge, prometheus.GaugeValue, *p.age, p.name)
		}
	}
}
