package pqpsk

import (
	"bytes"
	"crypto/mlkem"
	"crypto/rand"
	"net/netip"
	"time"

	"go.uber.org/zap"
)

func randRead(b []byte) {
	// crypto/rand.Read never returns an error (it crashes the program
	// rather than return predictable bytes).
	_, _ = rand.Read(b)
}

// start begins an exchange as initiator: a fresh ML-KEM key pair and
// session id, based on the current ratchet key.
func (m *Manager) start(p *peer, now time.Time) {
	dk, err := mlkem.GenerateKey768()
	if err != nil {
		m.log.Error("post-quantum: generate ML-KEM key", zap.Error(err))
		return
	}
	a := &attempt{dk: dk, base: p.base, started: now, lastSent: now}
	randRead(a.sid[:])
	a.init = marshalInit(m.self, a.sid, p.base.epoch, baseID(p.base.key), dk.EncapsulationKey().Bytes())
	seal(a.init, p.pk.kInit)
	p.att = a
	m.send(p, a.init)
}

// HandlePacket processes one received datagram. Anything malformed, from
// an unknown sender, unauthenticated or out of place is counted and
// dropped.
func (m *Manager) HandlePacket(from netip.AddrPort, b []byte) {
	msg, err := Parse(b)
	if err != nil {
		m.reject("malformed")
		m.log.Debug("post-quantum: malformed packet", zap.Stringer("from", from), zap.Error(err))
		return
	}
	m.mu.Lock()
	p := m.peers[msg.Sender]
	switch {
	case p == nil:
		m.reject("unknown sender")
	case p.pk == nil:
		m.reject("peer not in post-quantum mode")
	default:
		now := m.cfg.Now()
		var reason string
		switch msg.Type {
		case MsgInit:
			reason = m.onInit(p, msg, now)
		case MsgResp:
			reason = m.onResp(p, msg, now)
		case MsgConfirm:
			reason = m.onConfirm(p, msg, now)
		case MsgAck:
			reason = m.onAck(p, msg)
		case MsgPoke:
			reason = m.onPoke(p, msg, now)
		}
		if reason != "" {
			m.reject(reason)
			m.log.Debug("post-quantum: dropped", zap.Stringer("type", msg.Type), zap.String("peer", keyString(p.Key)),
				zap.Stringer("from", from), zap.String("reason", reason))
		}
	}
	m.mu.Unlock()
	m.flush()
}

// onInit answers an Init as responder. It returns why it dropped it, or "".
func (m *Manager) onInit(p *peer, msg *Message, now time.Time) string {
	if p.initiator {
		return "wrong role"
	}
	if !verify(msg, p.pk.kInit) {
		return "bad mac"
	}
	if d := p.pend; d != nil && d.sid == msg.SID {
		if !bytes.Equal(d.init, msg.Raw) {
			return "session id reused"
		}
		m.send(p, d.resp) // a retransmitted Init: the same answer
		return ""
	}
	if now.Sub(p.lastInit) < minInitGap {
		return "rate limited"
	}
	p.lastInit = now
	// The base: the initiator's key by its id, among ours; else genesis.
	var base epochKey
	switch {
	case msg.BaseEpoch == p.base.epoch && msg.BaseID == baseID(p.base.key):
		base = p.base
	case p.pend != nil && msg.BaseEpoch == p.pend.epoch && msg.BaseID == baseID(p.pend.keys.psk):
		base = epochKey{p.pend.epoch, p.pend.keys.psk}
	}
	ss, ct := msg.EncapKey.Encapsulate()
	resp := marshalResp(m.self, msg.SID, base.epoch, ct)
	th := transcript(msg.Raw, unsealed(resp))
	keys, err := p.pk.deriveSession(ss, base.key, th)
	if err != nil {
		m.log.Error("post-quantum: responder keys", zap.Error(err))
		return "internal error"
	}
	seal(resp, keys.kResp)
	p.pend = &pending{sid: msg.SID, init: msg.Raw, epoch: base.epoch + 1, keys: keys, th: th, resp: resp}
	m.send(p, resp)
	return ""
}

// onResp completes the initiator's side: decapsulate, check, install,
// confirm.
func (m *Manager) onResp(p *peer, msg *Message, now time.Time) string {
	a := p.att
	if !p.initiator {
		return "wrong role"
	}
	if a == nil || a.sid != msg.SID {
		return "no such session"
	}
	if a.resp != nil {
		if !bytes.Equal(a.resp, msg.Raw) {
			return "second resp"
		}
		m.send(p, a.confirm) // our Confirm was lost
		return ""
	}
	var base epochKey
	switch msg.BaseEpoch {
	case a.base.epoch:
		base = a.base
	case 0: // the responder lost the chain: genesis
	default:
		return "unexpected base"
	}
	ss, err := a.dk.Decapsulate(msg.Cipher)
	if err != nil {
		return "bad ciphertext"
	}
	th := transcript(a.init, unsealed(msg.Raw))
	keys, err := p.pk.deriveSession(ss, base.key, th)
	if err != nil {
		m.log.Error("post-quantum: initiator keys", zap.Error(err))
		return "internal error"
	}
	if !verify(msg, keys.kResp) {
		return "bad mac"
	}
	if err := m.install(p, epochKey{base.epoch + 1, keys.psk}); err != nil {
		return "install failed"
	}
	a.dk, a.resp, a.th, a.keys, a.lastSent = nil, msg.Raw, th, keys, now
	a.confirm = marshalShort(MsgConfirm, m.self, a.sid)
	seal(a.confirm, keys.kConf, th)
	p.unconfirmed = true
	m.send(p, a.confirm)
	return ""
}

// onConfirm completes the responder's side: install and acknowledge.
func (m *Manager) onConfirm(p *peer, msg *Message, now time.Time) string {
	d := p.pend
	if p.initiator {
		return "wrong role"
	}
	if d == nil || d.sid != msg.SID {
		return "no such session"
	}
	if !verify(msg, d.keys.kConf, d.th) {
		return "bad mac"
	}
	if d.ack == nil {
		if err := m.install(p, epochKey{d.epoch, d.keys.psk}); err != nil {
			return "install failed"
		}
		m.agreed(p, now)
		d.ack = marshalShort(MsgAck, m.self, d.sid)
		seal(d.ack, d.keys.kAck, d.th)
	}
	m.send(p, d.ack)
	return ""
}

// onAck ends the initiator's attempt: both sides hold the key.
func (m *Manager) onAck(p *peer, msg *Message) string {
	a := p.att
	if !p.initiator {
		return "wrong role"
	}
	if a == nil || a.sid != msg.SID || a.confirm == nil {
		return "no such session"
	}
	if !verify(msg, a.keys.kAck, a.th) {
		return "bad mac"
	}
	p.att, p.unconfirmed = nil, false
	m.agreed(p, m.cfg.Now())
	return ""
}

// onPoke starts an exchange the responder asked for.
func (m *Manager) onPoke(p *peer, msg *Message, now time.Time) string {
	if !p.initiator {
		return "wrong role"
	}
	if !verify(msg, p.pk.kPoke) {
		return "bad mac"
	}
	if now.Sub(p.lastPoked) < minPokeGap {
		// Rate limited (a Poke can be replayed), but not forgotten: the
		// responder pokes again only PokeInterval later, which a restart
		// would add to its blackout.
		p.poked = true
		return "rate limited"
	}
	m.answerPoke(p, now)
	return ""
}

// answerPoke starts an exchange, or, if one is waiting for its Resp,
// resends its Init now: the responder that pokes has restarted, or
// missed the Init, and a retransmission would come only a second later.
// An exchange past its Resp is left to finish or time out.
func (m *Manager) answerPoke(p *peer, now time.Time) {
	p.lastPoked, p.poked = now, false
	switch a := p.att; {
	case a == nil:
		m.start(p, now)
	case a.confirm == nil:
		a.lastSent = now
		m.send(p, a.init)
	}
}

// install hands a new key to WireGuard and makes it the ratchet base. A
// first key of a chain (the peer restarted) or one after none (pending,
// closed) is a fresh start: no session survives it, so the peer is reset,
// and the responder, who installs last, starts the handshake at once; the
// initiator's peer waits for it (wgtun.Device.ResetPeer).
func (m *Manager) install(p *peer, k epochKey) error {
	var err error
	if p.state != StatePQ || k.epoch == 1 {
		err = m.inst.ResetPeer(p.Key, k.key, !p.initiator)
	} else {
		err = m.inst.SetPresharedKey(p.Key, k.key)
	}
	if err != nil {
		m.log.Error("post-quantum: install PSK", zap.String("peer", keyString(p.Key)), zap.Error(err))
		return err
	}
	p.base = k
	return nil
}

// agreed records that both sides hold the installed key.
func (m *Manager) agreed(p *peer, now time.Time) {
	if p.state != StatePQ {
		m.log.Info("post-quantum: PSK agreed", zap.String("peer", keyString(p.Key)),
			zap.Uint64("epoch", p.base.epoch), zap.String("was", string(p.state)))
	}
	m.setState(p, StatePQ)
	p.reason, p.agreedAt = "", now
	p.rotateAt = now.Add(jitter(m.cfg.Rotate))
	m.exchanges.Add(1)
}
