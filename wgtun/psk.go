package wgtun

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/device"
)

// Preshared keys (the post-quantum PSKs of pqpsk, docs/post-quantum.md).
//
// wireguard-go keeps a peer's PSK until the peer is removed; a peer created
// without one has none (classical). The engine's writes (SetPeers,
// SyncPeers, the on-demand activator) create peers without knowing about
// PSKs, and a peer they remove and re-create, or one the on-demand trimmer
// removed and the activator brings back, would come back classical. So
// every UAPI set this package issues passes through pskStore.amend (one
// hook, in Device.ipcSet): each block that creates a peer gets the
// peer's recorded PSK as its second line, in the same set. Blocks that
// only update a peer (update_only=true) or remove one are left alone:
// wireguard-go keeps the PSK of a peer it updates. With
// Config.RequirePresharedKey a peer without a recorded PSK is created with
// a random one nobody knows, so that no classical handshake with it can
// succeed before a PSK is agreed.
type pskStore struct {
	mu      sync.Mutex
	require bool
	keys    map[Key]Key // recorded PSKs; the zero key is an explicit "none"
}

// amend returns body with a preshared_key line after the public_key line
// of every block that creates a peer.
func (s *pskStore) amend(body string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.require && len(s.keys) == 0 {
		return body // the common, classical case: no parsing
	}
	lines := strings.SplitAfter(body, "\n")
	var b strings.Builder
	b.Grow(len(body) + 128)
	for i := 0; i < len(lines); {
		hexKey, isPeer := strings.CutPrefix(lines[i], "public_key=")
		if !isPeer {
			b.WriteString(lines[i])
			i++
			continue
		}
		// The block runs to the next public_key line.
		end := i + 1
		creates := true
		for ; end < len(lines) && !strings.HasPrefix(lines[end], "public_key="); end++ {
			switch strings.TrimSuffix(lines[end], "\n") {
			case "update_only=true", "remove=true":
				creates = false
			}
			if strings.HasPrefix(lines[end], "preshared_key=") {
				creates = false // the writer chose it
			}
		}
		b.WriteString(lines[i])
		if creates {
			if psk, ok := s.pskFor(strings.TrimSuffix(hexKey, "\n")); ok {
				fmt.Fprintf(&b, "preshared_key=%s\n", psk.hex())
			}
		}
		for _, l := range lines[i+1 : end] {
			b.WriteString(l)
		}
		i = end
	}
	return b.String()
}

// pskFor is the PSK a peer (by UAPI hex key) is created with; false: none
// (classical, and wireguard-go's default). Caller holds s.mu.
func (s *pskStore) pskFor(hexKey string) (Key, bool) {
	k, err := parseHexKey(hexKey)
	if err != nil {
		return Key{}, false // not ours to judge: wireguard-go rejects it
	}
	if psk, ok := s.keys[k]; ok {
		return psk, true
	}
	if s.require {
		return randomKey(), true
	}
	return Key{}, false
}

func (s *pskStore) set(peer, psk Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[Key]Key{}
	}
	s.keys[peer] = psk
}

func randomKey() Key {
	var k Key
	_, _ = rand.Read(k[:]) // never fails (it crashes the program instead)
	return k
}

// SetPresharedKey records peer's PSK and sets it on the peer if wireguard-go
// holds it (its current session continues; the next handshake uses the new
// key). The zero key means none: classical WireGuard. A peer the engine
// creates later is created with it.
func (d *Device) SetPresharedKey(peer, psk Key) error {
	d.setMu.Lock()
	defer d.setMu.Unlock()
	d.psk.set(peer, psk)
	// update_only: a peer wireguard-go does not hold is not created.
	body := fmt.Sprintf("public_key=%s\nupdate_only=true\npreshared_key=%s\n", peer.hex(), psk.hex())
	if err := d.ipcSet(body); err != nil {
		return fmt.Errorf("wgtun %s: set preshared key of %s: %w", d.cfg.Name, peer, err)
	}
	return nil
}

// FailClosed gives peer a random PSK nobody knows and ends its live
// session: wireguard-go keeps a session across a PSK change, so the peer
// is removed and re-created (same endpoint, allowed IPs and keepalive)
// in one UAPI set, which drops its keypairs. Traffic to and from the peer
// is then dropped until an agreed key is installed. A peer wireguard-go
// does not hold only gets the random key recorded.
func (d *Device) FailClosed(peer Key) error {
	return d.resetPeer(peer, randomKey(), false, false)
}

// ResetPeer installs psk as peer's new key for a fresh start: the peer is
// re-created as FailClosed does (no session, no handshake history). Use it
// when the peer has no usable session anyway (it restarted, or had no
// agreed key): without the reset, wireguard-go would wait out its 5 s
// retry timer of the handshakes that failed under the previous key.
//
// Exactly one of the two ends must start the fresh handshake: initiate
// sends one at once and, until a handshake with the peer completes, starts
// one every followUpEvery (see followUp); without initiate the re-created
// peer stays quiet, its own initiations held back for RekeyTimeout (see
// quietLocked), and answers the other end's.
func (d *Device) ResetPeer(peer, psk Key, initiate bool) error {
	return d.resetPeer(peer, psk, initiate, true)
}

func (d *Device) resetPeer(peer, psk Key, initiate, agreed bool) error {
	d.setMu.Lock()
	defer d.setMu.Unlock()
	d.psk.set(peer, psk)
	cur, ok, err := d.configuredLocked(peer)
	if err != nil {
		return fmt.Errorf("wgtun %s: reset peer %s: %w", d.cfg.Name, peer, err)
	}
	if !ok {
		return nil
	}
	quiet := agreed && !initiate && cur.Endpoint.IsValid()
	var b strings.Builder
	fmt.Fprintf(&b, "public_key=%s\nremove=true\npublic_key=%s\npreshared_key=%s\n", peer.hex(), peer.hex(), psk.hex())
	if cur.Endpoint.IsValid() && !quiet {
		fmt.Fprintf(&b, "endpoint=%s\n", cur.Endpoint)
	}
	if d.cfg.Keepalive > 0 {
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", d.cfg.Keepalive)
	}
	for _, pfx := range cur.AllowedIPs {
		fmt.Fprintf(&b, "allowed_ip=%s\n", pfx)
	}
	if err := d.ipcSet(b.String()); err != nil {
		d.written = nil // the next SetPeers reads the device back
		return fmt.Errorf("wgtun %s: reset peer %s: re-create: %w", d.cfg.Name, peer, err)
	}
	if quiet {
		if err := d.quietLocked(peer, cur.Endpoint); err != nil {
			return err
		}
	}
	if initiate && cur.Endpoint.IsValid() {
		if p := d.wg.LookupPeer(device.NoisePublicKey(peer)); p != nil {
			if err := p.SendHandshakeInitiation(false); err != nil {
				d.log.Debug("reset peer: initiate handshake", zap.Stringer("peer", peer), zap.Error(err))
			}
		}
		d.followUp(peer)
	}
	return nil
}

// quietLocked holds back the initiations of a peer just re-created without
// its endpoint, then gives it the endpoint. Why: a re-created peer with
// traffic for the other end starts a handshake at its first packet, and
// so would the other end's: two initiations crossing, each end answering
// the other's. wireguard-go handles a peer's handshake messages on several
// goroutines at once, and when its response to our initiation and its own
// initiation are handled together, ours can end with a session whose
// receiving index it has just dropped: we send on it, everything we send
// is discarded, and as we receive the other end's traffic nothing tells us
// until the other end's "stopped hearing back" timer, 15 s later. An
// initiation started while the peer has no endpoint goes nowhere, but
// wireguard-go then starts no other for RekeyTimeout (its retry comes after
// that, if the other end's never completed). Caller holds setMu.
func (d *Device) quietLocked(peer Key, endpoint netip.AddrPort) error {
	if p := d.wg.LookupPeer(device.NoisePublicKey(peer)); p != nil {
		_ = p.SendHandshakeInitiation(false) // fails for want of an endpoint; that is the point
	}
	body := fmt.Sprintf("public_key=%s\nupdate_only=true\nendpoint=%s\n", peer.hex(), endpoint)
	if err := d.ipcSet(body); err != nil {
		d.written = nil
		return fmt.Errorf("wgtun %s: reset peer %s: endpoint: %w", d.cfg.Name, peer, err)
	}
	return nil
}

// Peers re-created with an agreed key, on the end that starts the fresh
// handshake, are followed up until a handshake with them completes: every
// followUpEvery, one device read, and a new handshake for each that has
// had none since, for up to followUpFor (after which wireguard-go's own
// 5 s retries have had their chance). The other end is quiet meanwhile
// (quietLocked), so the two never start handshakes at the same moment.
//
// Why: the first handshake after a fresh start can be lost to a race
// wireguard-go cannot see. Before the exchange, a restarted node's pod
// traffic starts a handshake under its random key; if the peer re-creates
// its side first, it answers that stale initiation (with the agreed key,
// useless to us: our side was re-created meanwhile, its handshake state
// gone) and then drops our real one as a replay or a flood (same
// timestamp, once rounded to wireguard-go's 16 ms, or within 50 ms).
// Both sides would then wait out the 5 s retry timer (RekeyTimeout).
const (
	followUpEvery = 250 * time.Millisecond
	followUpFor   = device.RekeyTimeout
)

// followUps: peers followed up, by the time of their reset.
type followUps struct {
	mu      sync.Mutex
	since   map[Key]time.Time
	running bool // a round is scheduled
}

func (d *Device) followUp(peer Key) {
	d.fu.mu.Lock()
	defer d.fu.mu.Unlock()
	if d.fu.since == nil {
		d.fu.since = map[Key]time.Time{}
	}
	d.fu.since[peer] = time.Now()
	if !d.fu.running {
		d.fu.running = true
		time.AfterFunc(followUpEvery, d.followUpRound)
	}
}

// followUpRound reads the device once and starts a handshake with every
// followed-up peer that has had none since its reset.
func (d *Device) followUpRound() {
	st, err := d.state()
	now := time.Now()
	last := make(map[Key]time.Time, len(st.Peers))
	for _, p := range st.Peers {
		last[p.PublicKey] = p.LastHandshake
	}
	var start []Key
	d.fu.mu.Lock()
	for k, at := range d.fu.since {
		hs, held := last[k]
		switch {
		case err != nil || !held || hs.After(at) || now.Sub(at) >= followUpFor:
			delete(d.fu.since, k) // done, gone, or the device is
		case now.Sub(at) >= followUpEvery:
			start = append(start, k)
		}
	}
	d.fu.running = len(d.fu.since) > 0
	if d.fu.running {
		time.AfterFunc(followUpEvery, d.followUpRound)
	}
	d.fu.mu.Unlock()
	for _, k := range start {
		p := d.wg.LookupPeer(device.NoisePublicKey(k))
		if p == nil {
			continue
		}
		d.log.Debug("no handshake since the peer was reset: starting one", zap.Stringer("peer", k))
		// Clears the handshake state (the stale exchange) and the 5 s
		// limit on initiations; no session to lose: none completed.
		p.ExpireCurrentKeypairs()
		if err := p.SendHandshakeInitiation(false); err != nil {
			d.log.Debug("follow-up handshake", zap.Stringer("peer", k), zap.Error(err))
		}
	}
}

// configuredLocked returns peer as wireguard-go holds it, from the record
// of our last write when there is one (a reset at start-up, one per peer,
// must not read back every peer each time), else from the device; false
// if it holds no such peer. Caller holds setMu.
func (d *Device) configuredLocked(peer Key) (Peer, bool, error) {
	if d.written != nil {
		p, ok := d.written[peer]
		return p, ok, nil
	}
	st, err := d.state()
	if err != nil {
		return Peer{}, false, err
	}
	for _, p := range st.Peers {
		if p.PublicKey == peer {
			return normalizePeer(p.Peer), true, nil
		}
	}
	return Peer{}, false, nil
}

// ForgetPresharedKey drops peer's recorded PSK (the peer left the
// cluster); a peer created later for that key gets the default again.
func (d *Device) ForgetPresharedKey(peer Key) {
	d.psk.mu.Lock()
	defer d.psk.mu.Unlock()
	delete(d.psk.keys, peer)
}
