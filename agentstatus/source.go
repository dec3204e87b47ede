package agentstatus

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// Engine is proxy.Engine.
type Engine interface {
	Status() proxy.Status
}

// Tunnel is wgtun.Device: Stats reads it afresh (`crosswire status`),
// LastStats returns its last own read (metrics).
type Tunnel interface {
	Stats() ([]wgtun.PeerStats, error)
	LastStats() (time.Time, []wgtun.PeerStats)
}

// Rules is nft.Manager: Counters reads the rule counters afresh (a dozen
// rules, whatever the cluster's size); LastReadback returns what the last
// resync's drift check read, the sets' sizes included.
type Rules interface {
	Counters() (map[string]nft.Counter, error)
	LastReadback() nft.Readback
}

// Info is what the agent knows about itself and does not change.
type Info struct {
	Node       string
	Interface  string
	PublicKey  string
	ListenPort uint16
	MTU        int // at start; the tunnel's live MTU wins when it can tell
	Strict     bool
	// OnDemandPeers: WireGuard holds only the peers with recent traffic.
	OnDemandPeers bool
	// PostQuantum is the --post-quantum mode; PQRotate its --pq-rotate.
	PostQuantum string
	PQRotate    time.Duration
}

// Mark counter keys in Report.MarkCounters, by nftables rule comment.
var markCounterKeys = map[string]string{
	nft.CommentEgress4:       "egress4",
	nft.CommentEgress6:       "egress6",
	nft.CommentTunnelIngress: "tunnel_ingress",
}

// Drop counter keys in Report.DropCounters, by nftables rule comment:
// every rule that drops pod traffic to keep it off the underlay in clear.
// Both families of a rule count under one key.
var dropCounterKeys = map[string]string{
	nft.CommentLeakGuard:      "leak_guard",
	nft.CommentGuard4:         "guard_table",
	nft.CommentGuard6:         "guard_table",
	nft.CommentStrictIngress4: "strict_ingress",
	nft.CommentStrictIngress6: "strict_ingress",
	nft.CommentGuardCluster4:  "strict_cluster",
	nft.CommentGuardCluster6:  "strict_cluster",
}

// DropCounterKeys are the keys of Report.DropCounters, each always present.
var DropCounterKeys = []string{"leak_guard", "guard_table", "strict_ingress", "strict_cluster"}

// Source builds reports: fresh ones (Report, for `crosswire status`) and
// snapshots of what the datapath last read (Snapshot, for metrics).
// Neither advances the Tracker: it observes the device's own reads
// (Tracker.Watch).
type Source struct {
	Info    Info
	Engine  Engine
	Tunnel  Tunnel
	Rules   Rules
	Tracker *Tracker
	PQ      PQ // nil unless --post-quantum
	// HandshakeTimeout defaults to DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	Now              func() time.Time

	mu       sync.Mutex
	rejected []controller.Rejection
}

// SetRejected records the Nodes the controller left out of the desired
// state, for the report (state rejected) and the metrics. Call it with
// every new state; nil when none are rejected.
func (s *Source) SetRejected(r []controller.Rejection) {
	s.mu.Lock()
	s.rejected = slices.Clone(r)
	s.mu.Unlock()
}

func (s *Source) rejections() []controller.Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

func (s *Source) timeout() time.Duration {
	if s.HandshakeTimeout > 0 {
		return s.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}

func (s *Source) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// activationsRefused returns the on-demand device's refusal counters (nil
// without on-demand peers): atomics in memory, not a read of the device.
func (s *Source) activationsRefused() map[string]uint64 {
	if a, ok := s.Tunnel.(interface{ ActivationsRefused() map[string]uint64 }); ok && s.Info.OnDemandPeers {
		return a.ActivationsRefused()
	}
	return nil
}

// reading is what a report is built from besides the engine's status.
type reading struct {
	now         time.Time
	mtu         int
	stats       []wgtun.PeerStats
	statsErr    error
	sizes       map[string]int
	counters    map[string]nft.Counter
	countersErr error
}

// Report is what `crosswire status` shows: the device read now (as `wg
// show` would), the rule counters read now, and the sets' sizes as the
// last resync read them back (dumping every set under the manager's lock
// costs ~25 ms of CPU at 5000 Nodes, too much to repeat per request). Its
// cost to the datapath is bounded: one UAPI read, and the manager's lock
// held for a dozen rules. It changes no state: the tracker only observes
// the datapath's own reads.
func (s *Source) Report() Report {
	rd := reading{now: s.now(), mtu: s.Info.MTU}
	// An automatically sized MTU follows the underlay: report the live one.
	if m, ok := s.Tunnel.(interface{ MTU() (int, error) }); ok {
		if v, err := m.MTU(); err == nil {
			rd.mtu = v
		}
	}
	if s.Tunnel != nil {
		rd.stats, rd.statsErr = s.Tunnel.Stats()
	}
	if s.Rules != nil {
		rd.sizes = s.Rules.LastReadback().Sizes
		rd.counters, rd.countersErr = s.Rules.Counters()
	}
	return s.build(rd)
}

// Snapshot builds the report from what the datapath last read — the
// device's last own read (normally the last resync's) and the table as the
// last resync read it back — and reads nothing: metrics are served from it
// at no cost to the datapath however often they are scraped. Its Time is
// that of the device read, and peer states and handshake ages are as of
// then; peers and sizes changed since show at the next resync.
func (s *Source) Snapshot() Report {
	r, _ := s.snapshot()
	return r
}

// snapshot is Snapshot, and when the device was read (zero: not yet).
func (s *Source) snapshot() (Report, time.Time) {
	rd := reading{now: s.now(), mtu: s.Info.MTU}
	var read time.Time
	if s.Tunnel != nil {
		if at, stats := s.Tunnel.LastStats(); !at.IsZero() {
			read, rd.now, rd.stats = at, at, stats
		}
	}
	if s.Rules != nil {
		rb := s.Rules.LastReadback()
		rd.sizes, rd.counters = rb.Sizes, rb.Counters
	}
	return s.build(rd), read
}

// readTimes identify the device and table reads a snapshot is built from.
type readTimes struct{ device, table time.Time }

// readTimes returns when the device and the table were last read by the
// datapath; it reads neither.
func (s *Source) readTimes() readTimes {
	var rt readTimes
	if s.Tunnel != nil {
		rt.device, _ = s.Tunnel.LastStats()
	}
	if s.Rules != nil {
		rt.table = s.Rules.LastReadback().At
	}
	return rt
}

func (s *Source) build(rd reading) Report {
	now := rd.now
	st := s.Engine.Status()
	r := Report{
		Node: s.Info.Node, Time: now, Interface: s.Info.Interface, PublicKey: s.Info.PublicKey,
		ListenPort: s.Info.ListenPort, MTU: rd.mtu, Strict: s.Info.Strict, OnDemandPeers: s.Info.OnDemandPeers,
		HandshakeTimeoutSeconds: s.timeout().Seconds(),
		Datapath: Datapath{
			Known: st.Known, Applied: st.Applied, LastDurationSec: st.LastDuration.Seconds(),
			LastError: st.LastError, Applies: st.Applies, Errors: st.Errors,
			DriftRepairs: st.DriftRepairs, LastRepairs: st.LastRepairs,
		},
		Sets: map[string]int{}, MarkCounters: map[string]uint64{}, DropCounters: map[string]uint64{},
	}
	r.ActivationsRefused = s.activationsRefused()
	if !st.LastApply.IsZero() {
		t := st.LastApply
		r.Datapath.LastApply = &t
	}

	if rd.statsErr != nil {
		r.Errors = append(r.Errors, "tunnel: "+rd.statsErr.Error())
	}
	r.PeersConfigured = len(rd.stats)
	byKey := make(map[wgtun.Key]wgtun.PeerStats, len(rd.stats))
	for _, ps := range rd.stats {
		byKey[ps.PublicKey] = ps
	}
	rejections := s.rejections()
	rejected := make(map[string]bool, len(rejections))
	for _, rej := range rejections {
		rejected[rej.Node] = true
	}
	r.Peers = make([]Peer, 0, len(st.Peers)+len(rejections))
	for _, p := range st.Peers {
		// A rejected Node the engine holds (strict mode fences its pod
		// CIDRs as a keyless peer) is shown once, as rejected.
		if !rejected[p.Name] {
			r.Peers = append(r.Peers, s.peer(now, p, byKey))
		}
	}
	for _, rej := range rejections {
		r.Peers = append(r.Peers, Peer{Name: rej.Node, PodCIDRs: []string{}, State: StateRejected, Reason: rej.Reason, ReasonGroup: string(rej.Group)})
	}
	slices.SortStableFunc(r.Peers, func(a, b Peer) int { return cmp.Compare(a.Name, b.Name) })

	for _, name := range []string{nft.SetLocal4, nft.SetLocal6, nft.SetRemote4, nft.SetRemote6} {
		r.Sets[name] = rd.sizes[name]
	}
	if rd.countersErr != nil {
		r.Errors = append(r.Errors, "nftables counters: "+rd.countersErr.Error())
	} else {
		for comment, key := range markCounterKeys {
			if c, ok := rd.counters[comment]; ok {
				r.MarkCounters[key] = c.Packets
			}
		}
		for _, key := range DropCounterKeys {
			r.DropCounters[key] = 0
		}
		for comment, key := range dropCounterKeys {
			r.DropCounters[key] += rd.counters[comment].Packets
		}
	}
	s.addPQ(&r)
	r.finish()
	return r
}

func (s *Source) peer(now time.Time, p proxy.Peer, byKey map[wgtun.Key]wgtun.PeerStats) Peer {
	out := Peer{Name: p.Name, PodCIDRs: []string{}}
	for _, c := range p.PodCIDRs {
		out.PodCIDRs = append(out.PodCIDRs, c.String())
	}
	if p.Endpoint.IsValid() {
		out.Endpoint = p.Endpoint.String()
	}
	if p.PublicKey.IsZero() {
		out.State = StateWaitingForKey
		return out
	}
	out.PublicKey = p.PublicKey.String()
	ps, onDevice := byKey[p.PublicKey]
	out.Configured = onDevice
	if onDevice {
		out.RxBytes, out.TxBytes = ps.RxBytes, ps.TxBytes
		if ps.Endpoint.IsValid() {
			out.Endpoint = ps.Endpoint.String()
		}
		if !ps.LastHandshake.IsZero() {
			t := ps.LastHandshake
			age := now.Sub(t).Seconds()
			out.LastHandshake, out.HandshakeAgeSeconds = &t, &age
		}
	}
	var pending time.Time
	if s.Tracker != nil {
		pending = s.Tracker.pendingSince(p.PublicKey)
	}
	out.State = Classify(now, ps.LastHandshake, pending, s.timeout())
	return out
}
