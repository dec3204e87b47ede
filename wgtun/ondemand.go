package wgtun

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/device"
)

// On-demand peers (Config.OnDemand), after Tailscale's "lazy" WireGuard
// configuration: every configured wireguard-go peer holds queues, timers
// and two goroutines whether it carries traffic or not (docs/benchmarks.md
// has what that costs), and a node talks to
// few of the cluster's nodes. So SetPeers and SyncPeers record the full
// desired set, but wireguard-go holds only the active part of it:
//
//   - outbound: the TUN wrapper (ondemand_tun.go) looks up each packet's
//     destination and, before wireguard-go sees the batch, has the peers of
//     inactive destinations configured, so the packet that wanted the peer
//     finds it;
//   - inbound: the bind wrapper (ondemand_bind.go) does the same by the
//     source IP of each received datagram against the peers' endpoint IPs,
//     so a handshake initiation from an unconfigured peer is answered at
//     once; a transport data message means the remote still holds a session
//     we lost (we restarted, or trimmed it first), so the activation also
//     starts a handshake, and the remote switches to a new session in one
//     round trip instead of after its ~15 s rekey timeout;
//   - idle peers are removed again by the trimmer (ondemand_trim.go).
//
// Deadlock safety. Configuring a peer is a UAPI set (IpcSet), which takes
// wireguard-go's ipcMutex and, while it starts the peer and sends its first
// packets, device.net's read lock. The packet paths it is triggered from
// are goroutines wireguard-go itself waits for with those locks held:
// Device.Close holds ipcMutex and waits for the receive goroutines
// (RoutineReceiveIncoming, in BindClose) and the TUN reader
// (RoutineReadFromTUN); BindUpdate (Up, or a `wg set ... listen-port` over
// the UAPI socket, which holds ipcMutex) holds device.net's write lock and
// waits for the receive goroutines; removing a peer (our SetPeers or trimmer,
// or anybody's UAPI set) waits for the peer's sender, which needs
// device.net's read lock. A packet path that called IpcSet itself, or waited
// for it without limit, could therefore wait for a lock held by someone
// waiting for that very packet path. So the packet paths never configure
// anything: they hand the peers to one activator goroutine and wait for its
// answer for at most maxActivationWait, then return the packets anyway (a
// packet whose peer is not configured yet is dropped by wireguard-go, as
// any packet to an unknown peer). Once the activator has been busy with one
// batch for longer than that, the packet paths stop waiting altogether and
// only queue their requests, so a stuck activator costs the data path one
// wait, not one per batch. The activator's own wait is then finite: whoever
// holds the lock it needs is either waiting for a packet path (which
// returns within maxActivationWait) or not waiting for us at all. It does
// handshakes only after answering the packet paths, as they take
// device.net's read lock. Close first tells the packet paths and the
// goroutines to stop, then closes wireguard-go (which makes every pending
// IpcSet finish), then waits for the goroutines.
//
// Our own writes stay serialised by Device.setMu: the activator and the
// trimmer take it like SetPeers and SyncPeers, so that Device.written
// (desired ∩ active as last written) stays true.
type onDemand struct {
	idle time.Duration
	log  *zap.Logger

	table atomic.Pointer[odTable] // nil until the first SetPeers

	// Guarded by Device.setMu.
	desired map[Key]Peer // the full desired set, normalised
	peers   map[Key]*odPeer
	index   odIndex         // who claims each slot of table (ondemand_delta.go)
	active  map[Key]*odPeer // the peers whose active flag is set

	nDesired, nConfigured atomic.Int64 // for PeerCounts

	// guard admits inbound activations and replays drops replayed
	// initiations (ondemand_guard.go, ondemand_replay.go); unconfirmed
	// holds the inbound-activated peers not yet confirmed (confirmInbound),
	// guarded by Device.setMu.
	guard       *inboundGuard
	unconfirmed map[*odPeer]struct{}
	replays     *replayCache

	reqs      chan *odRequest
	busySince atomic.Int64 // UnixNano the activator started its batch; 0 when idle
	stop      chan struct{}
	stopOnce  sync.Once
	done      sync.WaitGroup
}

// odPeer is one desired peer's on-demand state. It lives as long as its key
// is desired, across tables.
type odPeer struct {
	key Key
	// active means configured in wireguard-go (as far as we know). It is
	// set after the write that adds the peer and cleared before the one that
	// removes it, so that a packet path seeing it set may rely on the peer,
	// and one seeing it clear asks for an activation.
	active atomic.Bool
	// pending: an inbound activation holds a slot of the guard's cap for
	// this peer (asked for, or configured and not yet confirmed).
	pending atomic.Bool
	// deactivatedAt is when the peer was last removed from wireguard-go
	// (UnixNano; 0: never since Open), for the guard's session window.
	deactivatedAt atomic.Int64

	// Guarded by Device.setMu.
	activatedAt time.Time
	rx, tx      uint64 // byte counters at the previous trim check
	// wantData: activated for transport data of a lost session; only data
	// from the peer after the new handshake confirms it (confirmInbound).
	wantData bool
}

// odRequest asks the activator to configure peers; done is closed when it
// has tried.
type odRequest struct {
	peers     []*odPeer
	handshake []*odPeer // also start a handshake with these once active
	// inbound: asked for by received datagrams; every peer holds a pending
	// slot (ondemand_guard.go), which the activator passes on or releases.
	inbound bool
	done    chan struct{}
}

const (
	// maxActivationWait bounds how long a packet path waits for the
	// activator (see the deadlock note above). An activation is one small
	// UAPI set, well under a millisecond, unless it queues behind a
	// SetPeers.
	maxActivationWait = time.Second
	// maxActivationBatch caps how many queued requests one UAPI set
	// serves.
	maxActivationBatch = 64
)

func newOnDemand(idle time.Duration, pub Key, log *zap.Logger) *onDemand {
	return &onDemand{
		idle:        idle,
		log:         log,
		desired:     map[Key]Peer{},
		peers:       map[Key]*odPeer{},
		index:       newODIndex(nil),
		active:      map[Key]*odPeer{},
		guard:       newInboundGuard(pub, time.Now()),
		unconfirmed: map[*odPeer]struct{}{},
		replays:     newReplayCache(replayCacheSize),
		reqs:        make(chan *odRequest, maxActivationBatch),
		stop:        make(chan struct{}),
	}
}

// halt tells the packet paths to stop waiting and the goroutines to stop;
// Close then waits for them with done.
func (od *onDemand) halt() { od.stopOnce.Do(func() { close(od.stop) }) }

func (od *onDemand) stopped() bool {
	select {
	case <-od.stop:
		return true
	default:
		return false
	}
}

// activate has the activator configure peers and waits for it, bounded (see
// the deadlock note above). Called from the packet paths, with peers that
// were inactive when their packet was looked at.
func (od *onDemand) activate(peers, handshake []*odPeer, inbound bool) {
	req := &odRequest{peers: peers, handshake: handshake, inbound: inbound, done: make(chan struct{})}
	// A request that never reaches the activator gives its pending slots
	// back: the next packet asks again.
	dropped := func() {
		if inbound {
			for _, p := range peers {
				od.release(p)
			}
		}
	}
	if since := od.busySince.Load(); since != 0 && time.Since(time.Unix(0, since)) >= maxActivationWait {
		select {
		case od.reqs <- req:
		default: // full
			dropped()
		}
		return
	}
	t := time.NewTimer(maxActivationWait)
	defer t.Stop()
	select {
	case od.reqs <- req:
	case <-t.C:
		dropped()
		return
	case <-od.stop:
		dropped()
		return
	}
	select {
	case <-req.done:
	case <-t.C:
		od.log.Debug("on-demand activation still pending; passing packets on", zap.Int("peers", len(peers)))
	case <-od.stop:
	}
}

// runActivator serves activation requests until halt.
func (d *Device) runActivator() {
	od := d.od
	defer od.done.Done()
	for {
		var batch []*odRequest
		select {
		case <-od.stop:
			return
		case r := <-od.reqs:
			batch = append(batch, r)
		}
	drain:
		for len(batch) < maxActivationBatch {
			select {
			case r := <-od.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		od.busySince.Store(time.Now().UnixNano())
		handshake := d.activatePeers(batch)
		od.busySince.Store(0)
		for _, r := range batch {
			close(r.done)
		}
		for _, p := range handshake {
			d.initiateHandshake(p.key)
		}
	}
}

// activatePeers configures the requested peers that are still desired and
// inactive, in one UAPI set, and returns the requested handshake peers that
// are active now.
func (d *Device) activatePeers(batch []*odRequest) (handshake []*odPeer) {
	od := d.od
	d.setMu.Lock()
	defer d.setMu.Unlock()
	var todo, outbound []*odPeer
	for _, r := range batch {
		for _, p := range r.peers {
			if !r.inbound && !slices.Contains(outbound, p) {
				outbound = append(outbound, p)
			}
			// A peer dropped from the desired set since its packet was
			// looked up is no longer in od.peers (or is another odPeer).
			if od.peers[p.key] == p && !p.active.Load() && !slices.Contains(todo, p) {
				todo = append(todo, p)
			}
		}
	}
	// An inbound-activated peer stays pending until confirmInbound
	// confirms or removes it; every other inbound request's slot is free now:
	// the peer was active already, is no longer desired, or our own
	// traffic wants it too.
	defer func() {
		for _, r := range batch {
			if !r.inbound {
				continue
			}
			for _, p := range r.peers {
				if _, ok := od.unconfirmed[p]; !ok {
					od.release(p)
				}
			}
		}
	}()
	if od.stopped() {
		return nil
	}
	if len(todo) > 0 {
		if err := d.ipcSet(activationBody(todo, od.desired, d.cfg.Keepalive)); err != nil {
			// It may have configured some: the device is unknown now, and the
			// next SetPeers reads it back and adopts what it finds.
			d.written = nil
			level := zap.WarnLevel
			if od.stopped() {
				level = zap.DebugLevel // raced with Close: wireguard-go refuses new peers
			}
			d.log.Log(level, "on-demand: configure peers", zap.Int("peers", len(todo)), zap.Error(err))
			return nil
		}
		now := time.Now()
		for _, p := range todo {
			if d.written != nil {
				d.written[p.key] = od.desired[p.key]
			}
			od.markActive(p, now)
			if p.pending.Load() && !slices.Contains(outbound, p) {
				od.unconfirmed[p] = struct{}{}
				p.wantData = slices.ContainsFunc(batch, func(r *odRequest) bool { return r.inbound && slices.Contains(r.handshake, p) })
			}
		}
		d.log.Debug("on-demand: configured peers", zap.Int("activated", len(todo)),
			zap.Int64("configured", od.nConfigured.Load()), zap.Int64("desired", od.nDesired.Load()))
	}
	for _, r := range batch {
		for _, p := range r.handshake {
			if p.active.Load() && !slices.Contains(handshake, p) {
				handshake = append(handshake, p)
			}
		}
	}
	return handshake
}

// activationBody is the UAPI set that adds peers from desired. It replaces
// the allowed IPs, unlike Diff: the peer is not supposed to exist, and if it
// does (a failed trim) it must end up exactly as desired, as the record
// says; there is no traffic to it to disturb.
func activationBody(peers []*odPeer, desired map[Key]Peer, keepalive int) string {
	var b strings.Builder
	for _, p := range peers {
		w := desired[p.key]
		fmt.Fprintf(&b, "public_key=%s\n", p.key.hex())
		if w.Endpoint.IsValid() {
			fmt.Fprintf(&b, "endpoint=%s\n", w.Endpoint)
		}
		if keepalive > 0 {
			fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", keepalive)
		}
		b.WriteString("replace_allowed_ips=true\n")
		for _, pfx := range w.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", pfx)
		}
	}
	return b.String()
}

func (d *Device) initiateHandshake(k Key) {
	peer := d.wg.LookupPeer(device.NoisePublicKey(k))
	if peer == nil {
		return // trimmed or removed meanwhile
	}
	if err := peer.SendHandshakeInitiation(false); err != nil {
		d.log.Debug("on-demand: initiate handshake", zap.Stringer("peer", k), zap.Error(err))
	}
}

// markActive and markInactive keep the flag and the count together; the
// caller holds setMu.
func (od *onDemand) markActive(p *odPeer, now time.Time) {
	p.activatedAt, p.rx, p.tx = now, 0, 0
	p.active.Store(true)
	od.active[p.key] = p
	od.nConfigured.Add(1)
}

func (od *onDemand) markInactive(p *odPeer) {
	p.active.Store(false)
	delete(od.active, p.key)
	p.deactivatedAt.Store(time.Now().UnixNano())
	od.nConfigured.Add(-1)
	delete(od.unconfirmed, p)
	od.release(p)
}

// setDesiredLocked records desired (normalised; od keeps it) as the full
// desired set and returns what wireguard-go must hold: the desired peers
// that are active. A desired peer that present (the device read back; nil
// for none) already holds is adopted as active: someone configured it, or a
// failed write of ours did. The table is rebuilt only if a peer's key,
// allowed IPs or endpoint changed, so that a Node event that changes
// nothing on-demand costs no rebuild. Caller holds setMu.
func (od *onDemand) setDesiredLocked(desired, present map[Key]Peer, now time.Time) map[Key]Peer {
	changed := len(desired) != len(od.desired) || od.table.Load() == nil
	for k, p := range od.peers {
		if _, ok := desired[k]; !ok {
			delete(od.peers, k)
			if p.active.Load() {
				od.markInactive(p) // the write removes it
			}
			od.release(p) // asked for, not configured yet: the activator skips it
			changed = true
		}
	}
	for k, w := range desired {
		p, ok := od.peers[k]
		if !ok {
			p = &odPeer{key: k}
			od.peers[k] = p
			changed = true
		} else if !changed {
			old := od.desired[k]
			changed = old.Endpoint != w.Endpoint || !slices.Equal(old.AllowedIPs, w.AllowedIPs)
		}
		if _, ok := present[k]; ok && !p.active.Load() {
			od.markActive(p, now)
		}
	}
	od.desired = desired
	od.nDesired.Store(int64(len(desired)))
	if changed {
		od.index = newODIndex(desired)
		od.table.Store(buildODTable(desired, od.peers))
	}
	return od.target()
}

// PeerCounts returns how many peers the last SetPeers or SyncPeers asked
// for, and how many of them crosswire has configured in wireguard-go. They
// differ only with Config.OnDemand, where configured counts the active
// peers. Stats lists what the device actually holds.
func (d *Device) PeerCounts() (desired, configured int) {
	if d.od == nil {
		n := int(d.nPeers.Load())
		return n, n
	}
	return int(d.od.nDesired.Load()), int(d.od.nConfigured.Load())
}
