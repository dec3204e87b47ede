package wgtun

import (
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestInboundGuardAdmit walks the guard's rules in order with real
// messages, on an onDemand without a device.
func TestInboundGuardAdmit(t *testing.T) {
	m := newRealMsgs(t)
	start := time.Now()
	od := newOnDemand(defaultIdleTimeout, m.responder, zap.NewNop())
	g := od.guard
	h := g.mac1.newMAC()
	refused := func() map[string]uint64 {
		out := map[string]uint64{}
		for i, r := range RefusalReasons {
			out[r] = g.refused[i].Load()
		}
		return out
	}
	admit := func(p *odPeer, msg []byte, now time.Time) bool {
		kind := classifyMsg(msg)
		return od.admit(p, kind, kind == msgInitiation && g.mac1.valid(h, msg), now)
	}
	newPeer := func() *odPeer { k, _ := GeneratePrivateKey(); return &odPeer{key: k.PublicKey()} }

	p := newPeer()
	if admit(p, []byte("junk"), start) || admit(p, m.initiation[:100], start) {
		t.Fatal("malformed message admitted")
	}
	otherKey, _ := GeneratePrivateKey()
	other := newOnDemand(defaultIdleTimeout, otherKey.PublicKey(), zap.NewNop())
	if other.admit(p, msgInitiation, other.guard.mac1.valid(other.guard.mac1.newMAC(), m.initiation), start) {
		t.Fatal("initiation for another public key admitted")
	}
	if admit(p, m.response, start) || admit(p, m.cookie, start) {
		t.Fatal("response or cookie reply admitted")
	}
	if got := refused(); got[RefusedMalformed] != 2 || got[RefusedMAC1] != 0 || got[RefusedUnexpected] != 2 {
		t.Fatalf("refusals %v", got)
	}
	if other.guard.refused[refMAC1].Load() != 1 {
		t.Fatal("mac1 refusal not counted")
	}

	// Transport data: within the session window after start any peer,
	// later only a recently deactivated one.
	if !admit(p, m.transport[0], start.Add(time.Minute)) {
		t.Fatal("transport data right after start refused")
	}
	if admit(p, m.transport[0], start.Add(time.Minute)) || g.nPending.Load() != 1 {
		t.Fatal("a pending peer was asked for twice")
	}
	od.release(p)
	late := start.Add(g.sessionWindow + time.Second)
	if admit(p, m.transport[0], late) {
		t.Fatal("transport data from a peer without a session window admitted")
	}
	p.deactivatedAt.Store(late.Add(-time.Minute).UnixNano())
	if !admit(p, m.transport[0], late) {
		t.Fatal("transport data from a recently trimmed peer refused")
	}
	od.release(p)
	if !admit(p, m.initiation, late) {
		t.Fatal("valid initiation refused")
	}
	od.release(p)

	// The cap on pending activations, then the bucket.
	g.tokens = 1000
	var pending []*odPeer
	for range maxPendingInbound {
		q := newPeer()
		if !admit(q, m.initiation, late) {
			t.Fatalf("activation %d refused below the cap: %v", len(pending), refused())
		}
		pending = append(pending, q)
	}
	if admit(newPeer(), m.initiation, late) || refused()[RefusedPendingCap] != 1 {
		t.Fatalf("cap not enforced: %v", refused())
	}
	for _, q := range pending {
		od.release(q)
	}
	if g.nPending.Load() != 0 {
		t.Fatalf("%d pending after releasing all", g.nPending.Load())
	}
	g.tokens, g.last = 0, late
	if admit(newPeer(), m.initiation, late) || refused()[RefusedRateLimited] != 1 {
		t.Fatalf("empty bucket not enforced: %v", refused())
	}
	if !admit(newPeer(), m.initiation, late.Add(time.Second/inboundRate)) {
		t.Fatal("bucket did not refill")
	}
}

// TestReplayCache: an initiation seen before is a replay until it falls
// out of the cache.
func TestReplayCache(t *testing.T) {
	c := newReplayCache(3)
	msg := func(i byte) []byte {
		m := make([]byte, 148)
		m[0] = 1
		m[148-2*macSize] = i // mac1
		return m
	}
	for i := range byte(3) {
		if c.replayed(msg(i)) {
			t.Fatalf("first sight of %d taken for a replay", i)
		}
	}
	for i := range byte(3) {
		if !c.replayed(msg(i)) {
			t.Fatalf("replay of %d not caught", i)
		}
	}
	if c.replayed(msg(3)) || c.replayed(msg(0)) || !c.replayed(msg(3)) {
		t.Fatal("eviction: the oldest entry must go first")
	}
	if len(c.seen) != 3 {
		t.Fatalf("cache holds %d entries, size 3", len(c.seen))
	}
}
