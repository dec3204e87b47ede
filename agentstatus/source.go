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

// Tunnel is wgtun.Device (or ObservedDevice).
type Tunnel interface {
	Stats() ([]wgtun.PeerStats, error)
}

// Rules is nft.Manager.
type Rules interface {
	SetSizes() (map[string]int, error)
	Counters() (map[string]nft.Counter, error)
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
}

// Mark counter keys in Report.MarkCounters, by nftables rule comment.
var markCounterKeys = map[string]string{
	nft.CommentEgress4:       "egress4",
	nft.CommentEgress6:       "egress6",
	nft.CommentTunnelIngress: "tunnel_ingress",
}

// Source builds reports. Reading the device feeds the Tracker.
type Source struct {
	Info    Info
	Engine  Engine
	Tunnel  Tunnel
	Rules   Rules
	Tracker *Tracker
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

// Report reads the engine, the device and the table now.
func (s *Source) Report() Report {
	now := s.now()
	st := s.Engine.Status()
	r := Report{
		Node: s.Info.Node, Time: now, Interface: s.Info.Interface, PublicKey: s.Info.PublicKey,
		ListenPort: s.Info.ListenPort, MTU: s.Info.MTU, Strict: s.Info.Strict, OnDemandPeers: s.Info.OnDemandPeers,
		HandshakeTimeoutSeconds: s.timeout().Seconds(),
		Datapath: Datapath{
			Known: st.Known, Applied: st.Applied, LastDurationSec: st.LastDuration.Seconds(),
			LastError: st.LastError, Applies: st.Applies, Errors: st.Errors,
			DriftRepairs: st.DriftRepairs, LastRepairs: st.LastRepairs,
		},
		Sets: map[string]int{}, MarkCounters: map[string]uint64{},
	}
	if a, ok := s.Tunnel.(interface{ ActivationsRefused() map[string]uint64 }); ok && s.Info.OnDemandPeers {
		r.ActivationsRefused = a.ActivationsRefused()
	}
	// An automatically sized MTU follows the underlay: report the live one.
	if m, ok := s.Tunnel.(interface{ MTU() (int, error) }); ok {
		if v, err := m.MTU(); err == nil {
			r.MTU = v
		}
	}
	if !st.LastApply.IsZero() {
		t := st.LastApply
		r.Datapath.LastApply = &t
	}

	var stats []wgtun.PeerStats
	if s.Tunnel != nil {
		var err error
		if stats, err = s.Tunnel.Stats(); err != nil {
			r.Errors = append(r.Errors, "tunnel: "+err.Error())
		}
	}
	r.PeersConfigured = len(stats)
	if s.Tracker != nil && stats != nil {
		s.Tracker.Observe(now, stats, s.timeout())
	}
	byKey := map[wgtun.Key]wgtun.PeerStats{}
	for _, ps := range stats {
		byKey[ps.PublicKey] = ps
	}
	rejections := s.rejections()
	rejected := make(map[string]bool, len(rejections))
	for _, rej := range rejections {
		rejected[rej.Node] = true
	}
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
	if r.Peers == nil {
		r.Peers = []Peer{}
	}

	if s.Rules != nil {
		if sizes, err := s.Rules.SetSizes(); err != nil {
			r.Errors = append(r.Errors, "nftables sets: "+err.Error())
		} else {
			for _, name := range []string{nft.SetLocal4, nft.SetLocal6, nft.SetRemote4, nft.SetRemote6} {
				r.Sets[name] = sizes[name]
			}
		}
		if counters, err := s.Rules.Counters(); err != nil {
			r.Errors = append(r.Errors, "nftables counters: "+err.Error())
		} else {
			for comment, key := range markCounterKeys {
				if c, ok := counters[comment]; ok {
					r.MarkCounters[key] = c.Packets
				}
			}
		}
	}
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

// ObservedDevice is the WireGuard device as the engine should see it: every
// Stats and SyncPeers call (the engine syncs the device on each full apply,
// so at least every resync interval) also feeds the tracker.
type ObservedDevice struct {
	*wgtun.Device
	Tracker *Tracker
	Timeout time.Duration
}

// Stats reads the device and records the observation.
func (d *ObservedDevice) Stats() ([]wgtun.PeerStats, error) {
	st, err := d.Device.Stats()
	if err == nil {
		t := d.Timeout
		if t <= 0 {
			t = DefaultHandshakeTimeout
		}
		d.Tracker.Observe(time.Now(), st, t)
	}
	return st, err
}

// SyncPeers observes the device, then syncs it: with nobody asking for
// status, the engine's resync is what keeps the tracker's view current.
func (d *ObservedDevice) SyncPeers(peers []wgtun.Peer) (string, error) {
	if _, err := d.Stats(); err != nil {
		return "", err
	}
	return d.Device.SyncPeers(peers)
}
