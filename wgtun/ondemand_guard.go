package wgtun

import (
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/device"
)

// Inbound activation guard. Anybody can send UDP with a node's endpoint
// address as its source, so without a guard spoofed junk would configure
// every desired peer and undo what on-demand peers save. A datagram from an
// inactive peer's endpoint IP asks for its activation only when all of
// these hold, in this order (the first that fails names the refusal):
//
//  1. it is a well-formed WireGuard message (type and exact size:
//     classifyMsg), else "malformed";
//  2. a handshake initiation carries a valid mac1 for our public key, else
//     "mac1";
//  3. it is a message an inactive peer can legitimately send, else
//     "unexpected". An initiation always is. A handshake response or
//     cookie reply never is: wireguard-go can only use them with the
//     handshake state of a configured peer, which removing the peer
//     discarded, so activating for them could not help. Transport data is
//     only if this device could have had a session with the peer, i.e.
//     the remote may still be using one: within RejectAfterTime (180 s,
//     after which no WireGuard peer sends on a session) of the peer's last
//     deactivation, or of this device's start (a restarted agent cannot
//     know which peers had sessions with its previous incarnation). A
//     refused transport message costs latency, not connectivity: a remote
//     that hears nothing back starts a new handshake itself after
//     KeepaliveTimeout + RekeyTimeout (15 s), and its initiation activates;
//  4. fewer than maxPendingInbound inbound activations are pending, else
//     "pending_cap". Pending means requested, or configured but not yet
//     confirmed; unconfirmed peers are removed again after
//     unconfirmedTimeout (confirmInbound). An initiation's peer is
//     confirmed by a completed handshake, which a replayed initiation (a
//     real one captured from the wire has a valid mac1, and wireguard-go
//     would reject it only after activation, by its timestamp) or a forged
//     one can never bring. A transport message's peer is confirmed only
//     by data from the peer after the handshake we start: a remote that
//     really used a lost session sends its traffic again at once, while
//     forged data only makes the real remote answer our initiation (and
//     the response is all we hear). So forged datagrams hold at most
//     maxPendingInbound peers at any time, whatever they claim;
//  5. a token is left in the inbound activation bucket (inboundRate per
//     second, inboundBurst at once), else "rate_limited".
//
// Forged transport data inside a session window still costs the real
// peer a handshake (at most inboundRate a second). A peer already pending
// is not asked for again, so retransmissions cost neither tokens nor
// refusals. Outbound activations (a local pod's packet) are not limited:
// local pods may send anywhere. (An unconfirmed peer that our own traffic
// uses is confirmed by the handshake and replies that traffic brings; if
// the node never answers, the peer is removed after unconfirmedTimeout
// and our next packet configures it again, outside the guard.)
//
// The price under a sustained flood of valid-looking messages from every
// node's address: the cap and the bucket are shared, so a real remote's
// initiation competes with the flood for them and may be refused (it
// retries every RekeyTimeout); our own outbound traffic still activates
// at once.
const (
	inboundRate        = 10 // activations per second
	inboundBurst       = 64
	maxPendingInbound  = 64
	unconfirmedTimeout = 2 * device.RekeyTimeout // a lost response is retried once within it
	confirmInterval    = time.Second
)

// Refusal reasons (ActivationsRefused keys, the metric's label values).
const (
	RefusedMalformed   = "malformed"
	RefusedMAC1        = "mac1"
	RefusedUnexpected  = "unexpected"
	RefusedPendingCap  = "pending_cap"
	RefusedRateLimited = "rate_limited"
	// RefusedReplay counts copies of recent initiations, dropped before
	// wireguard-go (ondemand_replay.go), from any source.
	RefusedReplay = "replay"
)

// RefusalReasons lists every reason, in the guard's order, replays last.
var RefusalReasons = []string{RefusedMalformed, RefusedMAC1, RefusedUnexpected, RefusedPendingCap, RefusedRateLimited, RefusedReplay}

type refusal int

const (
	refMalformed refusal = iota
	refMAC1
	refUnexpected
	refPendingCap
	refRateLimited
	refReplay
	nRefusals
)

// inboundGuard is the onDemand's admission state for inbound activations.
type inboundGuard struct {
	mac1    *mac1Checker
	started time.Time
	// sessionWindow is RejectAfterTime; tests shorten it.
	sessionWindow time.Duration

	refused  [nRefusals]atomic.Uint64
	nPending atomic.Int64

	mu     sync.Mutex // the bucket
	tokens float64
	last   time.Time
	rate   float64 // tokens per second; tests change it
	burst  float64
}

func newInboundGuard(pub Key, now time.Time) *inboundGuard {
	return &inboundGuard{mac1: newMAC1Checker(pub), started: now, sessionWindow: device.RejectAfterTime,
		tokens: inboundBurst, last: now, rate: inboundRate, burst: inboundBurst}
}

// take takes a token from the bucket if there is one.
func (g *inboundGuard) take(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if dt := now.Sub(g.last); dt > 0 {
		g.tokens = min(g.burst, g.tokens+dt.Seconds()*g.rate)
		g.last = now
	}
	if g.tokens < 1 {
		return false
	}
	g.tokens--
	return true
}

// mayHaveSession reports whether the remote of inactive peer p may still
// send on a session it had with this device (rule 3 above).
func (g *inboundGuard) mayHaveSession(p *odPeer, now time.Time) bool {
	if now.Sub(g.started) < g.sessionWindow {
		return true
	}
	off := p.deactivatedAt.Load()
	return off != 0 && now.Sub(time.Unix(0, off)) < g.sessionWindow
}

// admit decides whether msg, received from the endpoint IP of the inactive
// peer p, may ask for p's activation, and counts a refusal. kind is
// classifyMsg(msg), and macOK whether an initiation's mac1 is valid. On true, p holds a
// pending slot that the caller must hand to the activator or release.
func (od *onDemand) admit(p *odPeer, kind wgMsgKind, macOK bool, now time.Time) bool {
	g := od.guard
	var r refusal
	switch {
	case kind == msgMalformed:
		r = refMalformed
	case kind == msgInitiation && !macOK:
		r = refMAC1
	case kind == msgResponse || kind == msgCookieReply || (kind == msgTransport && !g.mayHaveSession(p, now)):
		r = refUnexpected
	case p.pending.Load():
		return false // asked for already; not a refusal
	case g.nPending.Load() >= maxPendingInbound:
		r = refPendingCap
	case !g.take(now):
		r = refRateLimited
	default:
		if !p.pending.CompareAndSwap(false, true) {
			return false // another receive goroutine was quicker
		}
		g.nPending.Add(1)
		return true
	}
	g.refused[r].Add(1)
	return false
}

// release frees p's pending slot, if it holds one. The activator, the
// confirmer and the trimmer call it with setMu held; the packet paths for
// requests that never reached the activator.
func (od *onDemand) release(p *odPeer) {
	if p.pending.CompareAndSwap(true, false) {
		od.guard.nPending.Add(-1)
	}
}

// ActivationsRefused returns, by reason (RefusalReasons), how many received
// datagrams from inactive peers' endpoint addresses were refused an
// activation since Open; nil without Config.OnDemand.
func (d *Device) ActivationsRefused() map[string]uint64 {
	if d.od == nil {
		return nil
	}
	out := make(map[string]uint64, nRefusals)
	for i, name := range RefusalReasons {
		out[name] = d.od.guard.refused[i].Load()
	}
	return out
}

// confirmInbound releases the pending slots of inbound-activated peers that
// completed a handshake since their activation, and removes those that
// did not within unconfirmedTimeout. It reads the device only while some
// are unconfirmed.
func (d *Device) confirmInbound(now time.Time) {
	od := d.od
	d.setMu.Lock()
	defer d.setMu.Unlock()
	if od.stopped() || len(od.unconfirmed) == 0 {
		return
	}
	st, err := d.state()
	if err != nil {
		d.log.Warn("on-demand: confirm inbound activations", zap.Error(err))
		return
	}
	onDevice := make(map[Key]PeerStats, len(st.Peers))
	for _, s := range st.Peers {
		onDevice[s.PublicKey] = s
	}
	var expired []*odPeer
	for p := range od.unconfirmed {
		s, ok := onDevice[p.key]
		switch {
		case !p.active.Load() || !ok:
			// Trimmed, no longer desired, or removed by hand: the slot
			// is free, and SyncPeers deals with the rest.
		case !s.LastHandshake.IsZero() && !s.LastHandshake.Before(p.activatedAt) &&
			(!p.wantData || s.RxBytes > device.MessageResponseSize):
			// A real peer: it keeps its place like any active peer. (The
			// device counts received handshake messages in RxBytes; a
			// response is all a remote without a session sends.)
		case now.Sub(p.activatedAt) >= unconfirmedTimeout:
			expired = append(expired, p)
		default:
			continue
		}
		delete(od.unconfirmed, p)
		od.release(p)
	}
	if len(expired) > 0 {
		d.removePeersLocked(expired, "unconfirmed")
	}
}
