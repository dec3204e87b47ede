package pqpsk

import (
	"context"
	"crypto/ecdh"
	"crypto/mlkem"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Mode is the --post-quantum setting.
type Mode int

// The modes (docs/post-quantum.md, "Modes").
const (
	ModeOff Mode = iota
	ModeOn
	ModeRequired
)

func (m Mode) String() string {
	switch m {
	case ModeOff:
		return "off"
	case ModeOn:
		return "on"
	case ModeRequired:
		return "required"
	}
	return fmt.Sprintf("mode%d", int(m))
}

// ParseMode parses off, on or required.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "off", "false":
		return ModeOff, nil
	case "on", "true":
		return ModeOn, nil
	case "required":
		return ModeRequired, nil
	}
	return ModeOff, fmt.Errorf("post-quantum mode %q: want off, on or required", s)
}

// Peer is a WireGuard peer as the manager needs it.
type Peer struct {
	Key  Key            // WireGuard public key
	Addr netip.AddrPort // the peer's key-exchange address; invalid = unknown
	PQ   bool           // the peer advertises post-quantum support
	// Active: the peer is configured in WireGuard (always, unless on-demand
	// peers). Only active peers are rotated and poked; every known peer is
	// answered.
	Active bool
}

// Transport sends one datagram. It must not block for long and must not
// call back into the manager.
type Transport interface {
	Send(to netip.AddrPort, b []byte) error
}

// Installer puts keys into WireGuard (wgtun.Device in the agent).
type Installer interface {
	// SetPresharedKey sets the peer's PSK for its next handshakes; the zero
	// key means none (classical).
	SetPresharedKey(peer, psk Key) error
	// FailClosed gives the peer a random PSK nobody knows and ends its live
	// session.
	FailClosed(peer Key) error
	// ResetPeer installs psk for a fresh start: the peer has no usable
	// session (it restarted, or had no agreed key), so its session state
	// is dropped and, with initiate, a handshake started at once; without,
	// the peer starts none of its own and answers the other end's (exactly
	// one end initiates: crossing initiations can cost one direction 15 s).
	ResetPeer(peer, psk Key, initiate bool) error
	// ForgetPresharedKey drops what was recorded for a peer that is gone.
	ForgetPresharedKey(peer Key)
}

// State is a peer's post-quantum state.
type State string

// The states (docs/post-quantum.md, "State machine").
const (
	StatePending   State = "pending"   // no PSK agreed yet; traffic dropped
	StatePQ        State = "pq"        // a fresh hybrid PSK is in use
	StateClassical State = "classical" // peer without PQ support, mode on
	StateClosed    State = "closed"    // failed closed; traffic dropped
)

// States lists every state, for metrics.
var States = []State{StatePending, StatePQ, StateClassical, StateClosed}

// Config configures a Manager. Zero durations take the documented
// defaults.
type Config struct {
	Mode       Mode
	PrivateKey Key           // this node's WireGuard private key
	Rotate     time.Duration // rotation interval; fail closed after twice this
	// Protocol timers; the defaults are the documented ones, tests shorten
	// nothing but may.
	Retransmit     time.Duration // 1s
	AttemptTimeout time.Duration // 5s
	PokeInterval   time.Duration // 2s
	Now            func() time.Time
	Log            *zap.Logger
}

// DefaultRotate is the default rotation interval.
const DefaultRotate = 2 * time.Minute

const (
	minInitGap = 200 * time.Millisecond // responder: new Inits per peer
	minPokeGap = time.Second            // initiator: exchanges started by Pokes
	// TickInterval is how often Run drives the timers.
	TickInterval = 500 * time.Millisecond
)

func (c Config) withDefaults() Config {
	if c.Rotate <= 0 {
		c.Rotate = DefaultRotate
	}
	if c.Retransmit <= 0 {
		c.Retransmit = time.Second
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 5 * time.Second
	}
	if c.PokeInterval <= 0 {
		c.PokeInterval = 2 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	return c
}

// FailClosedAfter is the bound: a PQ peer whose PSK was agreed longer ago
// than this (or that has had none for this long since it was added) is
// failed closed.
func (c Config) FailClosedAfter() time.Duration { return 2 * c.withDefaults().Rotate }

// Manager runs the exchanges of one node with all its peers.
type Manager struct {
	cfg  Config
	priv *ecdh.PrivateKey
	self Key
	tr   Transport
	inst Installer
	log  *zap.Logger

	mu    sync.Mutex
	peers map[Key]*peer
	out   []outMsg

	counts     [4]atomic.Int64 // peers by state, in the order of States
	exchanges  atomic.Uint64   // agreements (either role)
	failClosed atomic.Uint64   // transitions into closed
	rejected   sync.Map        // reason → *atomic.Uint64
}

type outMsg struct {
	to netip.AddrPort
	b  []byte
}

type peer struct {
	Peer
	pk        *pairKeys // nil for a peer without PQ (or with a bad key)
	initiator bool
	state     State
	reason    string
	since     time.Time // added, or became a PQ peer

	base     epochKey  // the ratchet base: last key installed
	agreedAt time.Time // zero if none (or failed closed)
	rotateAt time.Time

	// Initiator.
	att         *attempt
	unconfirmed bool // installed from a Resp whose Ack never came
	// lastPoked: when a Poke last started an exchange or resent an Init;
	// poked: a Poke came less than minPokeGap after that, and is answered
	// once the gap has passed.
	lastPoked time.Time
	poked     bool

	// Responder.
	pend     *pending
	lastInit time.Time
	lastPoke time.Time
}

type epochKey struct {
	epoch uint64
	key   Key
}

// attempt is the initiator's exchange in flight.
type attempt struct {
	sid      SID
	dk       *mlkem.DecapsulationKey768 // dropped once the Resp is in
	init     []byte
	base     epochKey
	started  time.Time
	lastSent time.Time
	resp     []byte // the accepted Resp
	confirm  []byte
	th       []byte
	keys     sessionKeys
}

// pending is the responder's last answered exchange.
type pending struct {
	sid   SID
	init  []byte
	epoch uint64 // the epoch its key would have
	keys  sessionKeys
	th    []byte
	resp  []byte
	ack   []byte // set once confirmed
}

// New returns a manager; it sends nothing until SetPeers.
func New(cfg Config, tr Transport, inst Installer) (*Manager, error) {
	cfg = cfg.withDefaults()
	if cfg.Mode == ModeOff {
		return nil, errors.New("pqpsk: mode off needs no manager")
	}
	if tr == nil || inst == nil {
		return nil, errors.New("pqpsk: transport and installer are required")
	}
	priv, err := ecdh.X25519().NewPrivateKey(cfg.PrivateKey[:])
	if err != nil {
		return nil, fmt.Errorf("pqpsk: private key: %w", err)
	}
	var self Key
	copy(self[:], priv.PublicKey().Bytes())
	return &Manager{cfg: cfg, priv: priv, self: self, tr: tr, inst: inst, log: cfg.Log, peers: map[Key]*peer{}}, nil
}

// PublicKey is this node's WireGuard public key.
func (m *Manager) PublicKey() Key { return m.self }

// SetPeers makes peers the known peers: new ones start pending (PQ),
// classical (mode on, no PQ support) or closed (mode required, no PQ
// support); gone ones are forgotten.
func (m *Manager) SetPeers(peers []Peer) {
	m.mu.Lock()
	now := m.cfg.Now()
	seen := make(map[Key]bool, len(peers))
	for _, np := range peers {
		if np.Key == m.self || seen[np.Key] {
			continue
		}
		seen[np.Key] = true
		m.upsert(np, now)
	}
	for k := range m.peers {
		if !seen[k] {
			m.remove(k)
		}
	}
	m.mu.Unlock()
	m.flush()
}

// Update is SetPeers for the peers one change touches: upsert are added or
// changed, remove forgotten; the others stay as they are. Its cost does
// not grow with the number of peers.
func (m *Manager) Update(upsert []Peer, remove []Key) {
	m.mu.Lock()
	now := m.cfg.Now()
	for _, k := range remove {
		m.remove(k)
	}
	for _, np := range upsert {
		if np.Key != m.self {
			m.upsert(np, now)
		}
	}
	m.mu.Unlock()
	m.flush()
}

// SetActive sets every peer's Active flag (on-demand peers: whether
// WireGuard holds it now).
func (m *Manager) SetActive(active func(Key) bool) {
	m.mu.Lock()
	for k, p := range m.peers {
		p.Active = active(k)
	}
	m.mu.Unlock()
}

func (m *Manager) upsert(np Peer, now time.Time) {
	p, ok := m.peers[np.Key]
	if !ok {
		p = &peer{Peer: np, initiator: isInitiator(m.self, np.Key)}
		m.peers[np.Key] = p
		m.configure(p, np, now, true)
		return
	}
	if p.PQ != np.PQ || p.Addr.IsValid() != np.Addr.IsValid() {
		m.configure(p, np, now, false)
	}
	p.Peer = np
}

func (m *Manager) remove(k Key) {
	if p, ok := m.peers[k]; ok {
		m.setState(p, "")
		delete(m.peers, k)
		m.inst.ForgetPresharedKey(k)
	}
}

// configure sets a new or changed peer's mode. fresh: the peer was just
// added (WireGuard gives it a random PSK by itself).
func (m *Manager) configure(p *peer, np Peer, now time.Time, fresh bool) {
	prev := p.state
	p.Peer = np
	p.att, p.pend, p.unconfirmed, p.poked = nil, nil, false, false
	if !np.PQ || !np.Addr.IsValid() {
		p.pk = nil
		if m.cfg.Mode == ModeRequired {
			m.close(p, "peer without post-quantum support (--post-quantum=required)")
			return
		}
		if err := m.inst.SetPresharedKey(p.Key, Key{}); err != nil {
			m.log.Warn("post-quantum: set classical peer", zap.String("peer", keyString(p.Key)), zap.Error(err))
		}
		m.setState(p, StateClassical)
		p.reason, p.agreedAt = "peer without post-quantum support", time.Time{}
		if !fresh {
			m.log.Warn("post-quantum: peer no longer advertises support; classical WireGuard", zap.String("peer", keyString(p.Key)))
		}
		return
	}
	pk, err := newPairKeys(m.priv, m.self, p.Key)
	if err != nil {
		p.pk = nil
		m.close(p, fmt.Sprintf("bad peer key: %v", err))
		return
	}
	m.setState(p, StatePending)
	p.pk, p.since, p.reason = pk, now, "no PSK agreed yet"
	p.base, p.agreedAt = epochKey{}, time.Time{}
	if !fresh && prev != StatePending && prev != StateClosed {
		// It held a classical (zero) PSK: lock it until the exchange.
		if err := m.inst.FailClosed(p.Key); err != nil {
			m.log.Warn("post-quantum: lock peer", zap.String("peer", keyString(p.Key)), zap.Error(err))
		}
	}
	// A pending peer carries no traffic (it restarted, re-keyed or just
	// joined): start its exchange now, not at the next tick, which would
	// add up to a tick to the blackout of every restart.
	if p.Active {
		if p.initiator {
			m.start(p, now)
		} else {
			m.poke(p, now)
		}
	}
}

// close fails a peer closed: a random PSK and its session ended.
func (m *Manager) close(p *peer, reason string) {
	if err := m.inst.FailClosed(p.Key); err != nil {
		m.log.Error("post-quantum: fail closed", zap.String("peer", keyString(p.Key)), zap.Error(err))
	}
	if p.state != StateClosed {
		m.failClosed.Add(1)
		m.log.Warn("post-quantum: peer failed closed; its traffic is dropped until a PSK is agreed",
			zap.String("peer", keyString(p.Key)), zap.String("reason", reason), zap.Uint64("lastEpoch", p.base.epoch))
	}
	m.setState(p, StateClosed)
	p.reason, p.agreedAt = reason, time.Time{}
}

// Tick drives the timers: fail-closed, rotation, retransmission, Pokes.
func (m *Manager) Tick() {
	m.mu.Lock()
	now := m.cfg.Now()
	bound := 2 * m.cfg.Rotate
	for _, p := range m.peers {
		if p.pk == nil {
			continue
		}
		switch {
		case p.state == StatePQ && now.Sub(p.agreedAt) > bound:
			m.close(p, fmt.Sprintf("no PSK agreed for %v", bound))
		case p.state == StatePending && now.Sub(p.since) > bound:
			m.close(p, fmt.Sprintf("no PSK agreed within %v of the peer's arrival", bound))
		}
		if p.initiator {
			m.tickInitiator(p, now)
		} else {
			m.tickResponder(p, now)
		}
	}
	m.mu.Unlock()
	m.flush()
}

func (m *Manager) tickInitiator(p *peer, now time.Time) {
	if p.poked && now.Sub(p.lastPoked) >= minPokeGap {
		m.answerPoke(p, now)
	}
	if a := p.att; a != nil {
		switch {
		case now.Sub(a.started) >= m.cfg.AttemptTimeout:
			if a.resp != nil {
				p.unconfirmed = true
			}
			p.att = nil
			m.reject("attempt timed out")
		case now.Sub(a.lastSent) >= m.cfg.Retransmit:
			a.lastSent = now
			if a.confirm != nil {
				m.send(p, a.confirm)
			} else {
				m.send(p, a.init)
			}
		}
		if p.att != nil {
			return
		}
	}
	if !p.Active {
		return
	}
	if p.state != StatePQ || p.unconfirmed || !now.Before(p.rotateAt) {
		m.start(p, now)
	}
}

func (m *Manager) tickResponder(p *peer, now time.Time) {
	if p.Active && p.state != StatePQ && now.Sub(p.lastPoke) >= m.cfg.PokeInterval {
		m.poke(p, now)
	}
}

// poke asks the initiator for an exchange.
func (m *Manager) poke(p *peer, now time.Time) {
	p.lastPoke = now
	var nonce SID
	randRead(nonce[:])
	b := marshalShort(MsgPoke, m.self, nonce)
	seal(b, p.pk.kPoke)
	m.send(p, b)
}

// Run drives Tick until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(TickInterval)
	defer t.Stop()
	m.Tick()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.Tick()
		}
	}
}

func (m *Manager) send(p *peer, b []byte) {
	m.out = append(m.out, outMsg{to: p.Addr, b: b})
}

// flush sends what the locked section queued, outside the lock.
func (m *Manager) flush() {
	m.mu.Lock()
	out := m.out
	m.out = nil
	m.mu.Unlock()
	for _, o := range out {
		if err := m.tr.Send(o.to, o.b); err != nil {
			m.log.Debug("post-quantum: send", zap.Stringer("to", o.to), zap.Error(err))
		}
	}
}

func (m *Manager) reject(reason string) {
	v, _ := m.rejected.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// setState moves p to state s ("": gone), keeping the per-state counts
// that StateCounts reads without the lock. Caller holds m.mu.
func (m *Manager) setState(p *peer, s State) {
	if i := stateIndex(p.state); i >= 0 {
		m.counts[i].Add(-1)
	}
	p.state = s
	if i := stateIndex(s); i >= 0 {
		m.counts[i].Add(1)
	}
}

func stateIndex(s State) int {
	for i, t := range States {
		if t == s {
			return i
		}
	}
	return -1
}

// StateCounts returns how many peers are in each state, without taking
// the manager's lock or visiting the peers (for metrics scrapes).
func (m *Manager) StateCounts() map[State]int {
	out := make(map[State]int, len(States))
	for i, s := range States {
		out[s] = int(m.counts[i].Load())
	}
	return out
}

// PeerStatus is one peer's state for status and metrics.
type PeerStatus struct {
	Key       Key
	State     State
	Reason    string
	Epoch     uint64        // of the last key installed (0: none)
	Age       time.Duration // since the last agreement; 0 if none
	Initiator bool
}

// Status lists the peers, sorted by key.
func (m *Manager) Status() []PeerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	out := make([]PeerStatus, 0, len(m.peers))
	for _, p := range m.peers {
		s := PeerStatus{Key: p.Key, State: p.state, Reason: p.reason, Epoch: p.base.epoch, Initiator: p.initiator}
		if p.state == StatePQ {
			s.Reason = ""
		}
		if !p.agreedAt.IsZero() {
			s.Age = now.Sub(p.agreedAt)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return strings.Compare(string(a.Key[:]), string(b.Key[:])) })
	return out
}

// Counters are the manager's totals since start.
type Counters struct {
	Exchanges  uint64            // PSKs agreed
	FailClosed uint64            // peers failed closed
	Rejected   map[string]uint64 // messages dropped or attempts abandoned, by reason
}

// Counters returns the totals.
func (m *Manager) Counters() Counters {
	c := Counters{Exchanges: m.exchanges.Load(), FailClosed: m.failClosed.Load(), Rejected: map[string]uint64{}}
	m.rejected.Range(func(k, v any) bool {
		c.Rejected[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return c
}

// jitter returns d scaled into [0.9, 1.0) so that the rotations of many
// peers added at once spread out.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.1*rand.Float64()))
}

func keyString(k Key) string { return base64.StdEncoding.EncodeToString(k[:]) }
