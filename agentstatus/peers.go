package agentstatus

import (
	"sync"
	"time"

	"github.com/crosswire/crosswire/wgtun"
)

// DefaultHandshakeTimeout is WireGuard's REJECT_AFTER_TIME: a session whose
// handshake is older carries no more data.
const DefaultHandshakeTimeout = 180 * time.Second

// StaleGrace is how long a send without a valid session may wait for its
// handshake before the peer counts as stale: WireGuard's REKEY_TIMEOUT, the
// interval between handshake attempts. A working peer answers in one RTT.
const StaleGrace = 5 * time.Second

// Tracker remembers, per peer key, what the device's counters were at the
// last observation, so that "the tunnel has been trying to reach this peer
// and got no handshake" can be told from "the peer is just idle". WireGuard
// counts every handshake initiation in the peer's transmit bytes, so a send
// while the session is expired shows up as transmit bytes that grow with no
// new handshake. It observes the reads the device makes for the datapath
// (Watch): each engine resync, and with on-demand peers each check for
// idle ones. A status request or a metrics scrape never advances it, so
// how often anyone looks does not change a peer's state.
//
// It also sums the bytes through the tunnel over all peers (Totals), so
// the sum stays a counter when a peer leaves the device and its own
// counters with it.
//
// Safe for concurrent use.
type Tracker struct {
	mu     sync.Mutex
	peers  map[wgtun.Key]*track
	gen    uint64 // observations so far; a track not seen in the last is dropped
	rx, tx uint64 // bytes over all peers since the first observation
}

type track struct {
	rx, tx    uint64
	handshake time.Time
	// sentExpired is the first observation at which the peer had been sent
	// something while no session was valid and no handshake followed yet;
	// zero when there is no such pending attempt.
	sentExpired time.Time
	gen         uint64
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{peers: map[wgtun.Key]*track{}} }

// Watch makes t observe every read dev (wgtun.Device) makes for its own
// purposes, judging handshakes against timeout. Call it once, before the
// device is used.
func (t *Tracker) Watch(dev interface {
	OnRead(func(time.Time, []wgtun.PeerStats))
}, timeout time.Duration) {
	dev.OnRead(func(at time.Time, peers []wgtun.PeerStats) { t.Observe(at, peers, timeout) })
}

// Observe records the device's peers at time now. Peers no longer on the
// device are forgotten (a re-keyed node starts afresh).
func (t *Tracker) Observe(now time.Time, stats []wgtun.PeerStats, timeout time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	for _, s := range stats {
		expired := s.LastHandshake.IsZero() || now.Sub(s.LastHandshake) >= timeout
		tr, ok := t.peers[s.PublicKey]
		if !ok {
			tr = &track{rx: s.RxBytes, tx: s.TxBytes, handshake: s.LastHandshake, gen: t.gen}
			t.rx += s.RxBytes
			t.tx += s.TxBytes
			// Never a handshake, yet something was sent (at least the
			// initiations): an attempt is pending since at least now.
			if s.LastHandshake.IsZero() && s.TxBytes > 0 {
				tr.sentExpired = now
			}
			t.peers[s.PublicKey] = tr
			continue
		}
		tr.gen = t.gen
		if s.LastHandshake.After(tr.handshake) {
			tr.handshake = s.LastHandshake
			tr.sentExpired = time.Time{}
		}
		if expired && s.TxBytes > tr.tx && tr.sentExpired.IsZero() {
			tr.sentExpired = now
		}
		t.rx += grown(tr.rx, s.RxBytes)
		t.tx += grown(tr.tx, s.TxBytes)
		tr.rx, tr.tx = s.RxBytes, s.TxBytes
	}
	for k, tr := range t.peers {
		if tr.gen != t.gen {
			delete(t.peers, k)
		}
	}
}

// grown is how much a peer's byte counter grew between two observations;
// a counter that went down was reset (the peer was removed and added
// again in between) and counts from 0.
func grown(prev, cur uint64) uint64 {
	if cur >= prev {
		return cur - prev
	}
	return cur
}

// Totals returns the bytes received from and sent to all peers through
// the tunnel, as of the last observation.
func (t *Tracker) Totals() (rx, tx uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rx, t.tx
}

// pendingSince returns when a send without a handshake was first observed
// for key (zero if none is pending).
func (t *Tracker) pendingSince(key wgtun.Key) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr, ok := t.peers[key]; ok {
		return tr.sentExpired
	}
	return time.Time{}
}

// Classify returns the state of a peer that has a key (waiting for key and
// rejected are decided before): given its last handshake (zero if never or
// not on the device) and since when a send has waited for a handshake
// (zero if none):
//
//   - ok: a handshake less than timeout ago;
//   - handshake stale: no handshake within timeout (or never), and the
//     tunnel has been sending to the peer for at least StaleGrace without
//     one;
//   - idle: no handshake within timeout and nothing sent since: a quiet
//     peer without persistent keepalive. Healthy.
func Classify(now, lastHandshake, pendingSince time.Time, timeout time.Duration) string {
	switch {
	case !lastHandshake.IsZero() && now.Sub(lastHandshake) < timeout:
		return StateOK
	case !pendingSince.IsZero() && now.Sub(pendingSince) >= StaleGrace:
		return StateHandshakeStale
	}
	return StateIdle
}
