package pqpsk

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"testing"
	"time"
)

// pair returns a cluster's first two nodes as initiator and responder.
func pair(c *cluster) (ini, res *node) {
	ini, res = c.nodes[0], c.nodes[1]
	if !isInitiator(ini.pub, res.pub) {
		ini, res = res, ini
	}
	return ini, res
}

// installedOnlyAgreed checks that every key the responder ever installed
// was installed by the initiator too: a MITM never made one side accept a
// key the other does not hold.
func installedOnlyAgreed(t *testing.T, ini, res *node) {
	t.Helper()
	have := map[Key]bool{}
	for _, k := range ini.inst.history(res.pub) {
		have[k] = true
	}
	for _, k := range res.inst.history(ini.pub) {
		if !have[k] {
			t.Fatalf("responder installed %x, which the initiator never had", k[:4])
		}
	}
}

func TestMITMRewritingBytesGetsNoAgreement(t *testing.T) {
	// Offsets into each message: type, version, reserved, sender, session
	// id, body start, body end, MAC.
	offsets := []int{0, 1, 2, 4, 40, HeaderSize, HeaderSize + 9, -40, -1}
	for _, typ := range []MsgType{MsgInit, MsgResp, MsgConfirm, MsgAck, MsgPoke} {
		for _, off := range offsets {
			c := newCluster(t, 2)
			ini, res := pair(c)
			c.net.filter = func(p packet) []packet {
				if MsgType(p.b[0]) != typ {
					return []packet{p}
				}
				i := off
				if i < 0 {
					i += len(p.b)
				}
				if i >= len(p.b) {
					return []packet{p}
				}
				p.b[i] ^= 0x5a
				return []packet{p}
			}
			c.run(20 * time.Second)
			installedOnlyAgreed(t, ini, res)
			if typ != MsgAck && typ != MsgPoke && len(res.inst.history(ini.pub)) > 0 {
				t.Errorf("%s byte %d rewritten: the responder installed a key", typ, off)
			}
			// Without the MITM they agree again.
			c.net.filter = nil
			c.run(6 * time.Second)
			c.agree(ini, res)
		}
	}
}

// TestMITMWithItsOwnKeysLearnsNoPSK: an attacker on the underlay with its
// own X25519 identity (even a valid node of the cluster) substitutes its
// own ML-KEM key in the Init and its own ciphertext in the Resp, so that it
// knows the KEM secret of each half. It cannot compute S(A,B), so it MACs
// with what it can (its own static DH with each victim). Neither victim
// installs anything, and no key they ever hold is one it can derive.
func TestMITMWithItsOwnKeysLearnsNoPSK(t *testing.T) {
	c := newCluster(t, 3)
	ini, res, mallory := c.nodes[0], c.nodes[1], c.nodes[2]
	if !isInitiator(ini.pub, res.pub) {
		ini, res = res, ini
	}
	mpriv, err := ecdh.X25519().NewPrivateKey(mallory.priv[:])
	if err != nil {
		t.Fatal(err)
	}
	// Her best guesses at the pair's static secret: her DH with either.
	var guesses []*pairKeys
	for _, victim := range []Key{ini.pub, res.pub} {
		pk, err := newPairKeys(mpriv, mallory.pub, victim)
		if err != nil {
			t.Fatal(err)
		}
		pk.initiator, pk.responder = ini.pub, res.pub
		pk.kInit = mustHKDF(t, pk.s, labelInit+pk.id())
		guesses = append(guesses, pk)
	}
	known := map[Key]bool{}
	var mdk *mlkem.DecapsulationKey768
	var realInit *Message
	forged := 0
	c.net.filter = func(p packet) []packet {
		between := (p.from == ini.addr && p.to == res.addr) || (p.from == res.addr && p.to == ini.addr)
		if !between {
			return []packet{p}
		}
		msg, err := Parse(p.b)
		if err != nil {
			t.Fatalf("victim sent a malformed message: %v", err)
		}
		switch msg.Type {
		case MsgInit:
			// To the responder: her own encapsulation key.
			realInit = msg
			mdk, _ = mlkem.GenerateKey768()
			b := marshalInit(msg.Sender, msg.SID, 0, baseID(Key{}), mdk.EncapsulationKey().Bytes())
			seal(b, guesses[1].kInit)
			// To the initiator, at once: her own ciphertext to its real key,
			// as if from the responder.
			ssI, ct := realInit.EncapKey.Encapsulate()
			r := marshalResp(res.pub, msg.SID, 0, ct)
			th := transcript(realInit.Raw, unsealed(r))
			for _, g := range guesses {
				keys, _ := g.deriveSession(ssI, Key{}, th)
				known[keys.psk] = true
				seal(r, keys.kResp)
			}
			forged++
			return []packet{{from: p.from, to: p.to, b: b}, {from: res.addr, to: ini.addr, b: r}}
		case MsgResp:
			// Only if the responder accepted her Init: she knows its KEM
			// secret.
			if ssR, err := mdk.Decapsulate(msg.Cipher); err == nil {
				th := transcript(realInit.Raw, unsealed(msg.Raw))
				for _, g := range guesses {
					keys, _ := g.deriveSession(ssR, Key{}, th)
					known[keys.psk] = true
				}
			}
		}
		return []packet{p}
	}
	c.run(2*testRotate + 5*time.Second)
	if forged < 10 || len(known) == 0 {
		t.Fatalf("the attack did not run: %d forged exchanges", forged)
	}
	if n := len(res.inst.history(ini.pub)); n != 0 {
		t.Fatalf("the responder installed %d keys under the MITM", n)
	}
	if n := len(ini.inst.history(res.pub)); n != 0 {
		t.Fatalf("the initiator installed %d keys under the MITM", n)
	}
	for _, nd := range []*node{ini, res} {
		for _, o := range c.nodes {
			for _, k := range nd.inst.history(o.pub) {
				if known[k] {
					t.Fatal("a victim holds a key the attacker derived")
				}
			}
		}
	}
	// An outage, not a leak: the pair failed closed; the attacker's own
	// pairs with them are fine.
	if ini.inst.closes(res.pub) == 0 || res.inst.closes(ini.pub) == 0 {
		t.Fatal("the attacked pair did not fail closed")
	}
	c.agree(ini, mallory)
	c.agree(res, mallory)
}

func TestReplayInstallsNothing(t *testing.T) {
	c := newCluster(t, 3)
	ini, res := pair(c)
	var recorded []packet
	c.net.filter = func(p packet) []packet {
		recorded = append(recorded, packet{from: p.from, to: p.to, b: append([]byte(nil), p.b...)})
		return []packet{p}
	}
	c.run(3 * testRotate)
	c.net.filter = nil
	want := c.agree(ini, res)
	before := [2]int{len(ini.inst.history(res.pub)), len(res.inst.history(ini.pub))}
	// Replay everything but Pokes, to its destination and to every other
	// node (a message of one pair sent to another), past the rate limits.
	replay := func(pokes bool) {
		for _, p := range recorded {
			if (MsgType(p.b[0]) == MsgPoke) != pokes {
				continue
			}
			for _, nd := range c.nodes {
				nd.m.HandlePacket(p.from, p.b)
			}
			c.clk.advance(time.Second)
			c.net.pump(t)
		}
	}
	replay(false)
	after := [2]int{len(ini.inst.history(res.pub)), len(res.inst.history(ini.pub))}
	if after != before {
		t.Fatalf("replays installed keys: %v → %v", before, after)
	}
	if k, _ := res.inst.get(ini.pub); k != want {
		t.Fatal("replays changed the responder's key")
	}
	// A replayed Poke makes the initiator start a real exchange (rate
	// limited): the pair still agrees on every key.
	replay(true)
	c.agree(ini, res)
	installedOnlyAgreed(t, ini, res)
	c.run(10 * time.Second)
	c.agree(ini, res)
}

// TestDroppedExchangeFailsClosedAtTheBound: all exchange packets between
// two nodes are dropped. Both fail closed, not before 2×rotate after their
// last agreement and within one tick after it; a third node's pairs are
// untouched.
func TestDroppedExchangeFailsClosedAtTheBound(t *testing.T) {
	c := newCluster(t, 3)
	a, b, other := c.nodes[0], c.nodes[1], c.nodes[2]
	c.step(TickInterval)
	c.agree(a, b)
	c.net.filter = func(p packet) []packet {
		if (p.from == a.addr && p.to == b.addr) || (p.from == b.addr && p.to == a.addr) {
			return nil
		}
		return []packet{p}
	}
	lastAgreed := map[*node]time.Time{}
	closedAt := map[*node]time.Time{}
	bound := 2 * testRotate
	for e := time.Duration(0); e < bound+time.Minute; e += TickInterval {
		for _, nd := range []*node{a, b} {
			peer := b
			if nd == b {
				peer = a
			}
			s := c.status(nd, peer)
			if s.State == StatePQ {
				lastAgreed[nd] = c.clk.Now().Add(-s.Age)
			}
			if s.State == StateClosed && closedAt[nd].IsZero() {
				closedAt[nd] = c.clk.Now()
			}
		}
		c.step(TickInterval)
	}
	for _, nd := range []*node{a, b} {
		if closedAt[nd].IsZero() {
			t.Fatal("the pair never failed closed")
		}
		d := closedAt[nd].Sub(lastAgreed[nd])
		if d <= bound || d > bound+2*TickInterval {
			t.Fatalf("failed closed %v after the last agreement, want in (%v, %v]", d, bound, bound+2*TickInterval)
		}
	}
	if a.inst.closes(b.pub) != 1 || b.inst.closes(a.pub) != 1 {
		t.Fatalf("FailClosed calls %d/%d, want one each", a.inst.closes(b.pub), b.inst.closes(a.pub))
	}
	c.agree(a, other)
	c.agree(b, other)
	if a.inst.closes(other.pub)+b.inst.closes(other.pub)+other.inst.closes(a.pub)+other.inst.closes(b.pub) != 0 {
		t.Fatal("a healthy pair was failed closed")
	}
	// The path comes back: the pair recovers.
	c.net.filter = nil
	c.run(6 * time.Second)
	c.agree(a, b)
}
