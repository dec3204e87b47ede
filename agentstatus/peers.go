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
// new handshake. Observations happen at every look at the device: each
// engine resync, each status request and each metrics scrape.
//
// Safe for concurrent use.
type Tracker struct {
	mu    sync.Mutex
	peers map[wgtun.Key]*track
}

type track struct {
	tx        uint64
	handshake time.Time
	// sentExpired is the first observation at which the peer had been sent
	// something while no session was valid and no handshake followed yet;
	// zero when there is no such pending attempt.
	sentExpired time.Time
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{peers: map[wgtun.Key]*track{}} }

// Observe records the device's peers at time now. Peers no longer on the
// device are forgotten (a re-keyed node starts afresh).
func (t *Tracker) Observe(now time.Time, stats []wgtun.PeerStats, timeout time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[wgtun.Key]bool{}
	for _, s := range stats {
		seen[s.PublicKey] = true
		expired := s.LastHandshake.IsZero() || now.Sub(s.LastHandshake) >= timeout
		tr, ok := t.peers[s.PublicKey]
		if !ok {
			tr = &track{tx: s.TxBytes, handshake: s.LastHandshake}
			// Never a handshake, yet something was sent (at least the
			// initiations): an attempt is pending since at least now.
			if s.LastHandshake.IsZero() && s.TxBytes > 0 {
				tr.sentExpired = now
			}
			t.peers[s.PublicKey] = tr
			continue
		}
		if s.LastHandshake.After(tr.handshake) {
			tr.handshake = s.LastHandshake
			tr.sentExpired = time.Time{}
		}
		if expired && s.TxBytes > tr.tx && tr.sentExpired.IsZero() {
			tr.sentExpired = now
		}
		tr.tx = s.TxBytes
	}
	for k := range t.peers {
		if !seen[k] {
			delete(t.peers, k)
		}
	}
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
