package pqpsk

import (
	"testing"
	"time"
)

func TestTwoManagersAgreeAndRotate(t *testing.T) {
	c := newCluster(t, 2)
	a, b := c.nodes[0], c.nodes[1]
	c.step(TickInterval)
	k1 := c.agree(a, b)
	if s := c.status(a, b); s.Epoch != 1 {
		t.Fatalf("epoch %d after the first exchange, want 1", s.Epoch)
	}
	// Rotation: a new key, one epoch on, within the interval.
	c.run(testRotate)
	k2 := c.agree(a, b)
	if k2 == k1 {
		t.Fatal("rotation kept the same PSK")
	}
	// Only the first key was a fresh start (peer reset); a rotation keeps
	// the live session.
	if a.inst.resets != 1 || b.inst.resets != 1 {
		t.Fatalf("peer resets %d/%d, want 1 each (the first agreement only)", a.inst.resets, b.inst.resets)
	}
	if s := c.status(a, b); s.Epoch != 2 {
		t.Fatalf("epoch %d after one rotation, want 2", s.Epoch)
	}
	if s := c.status(b, a); s.Age > testRotate {
		t.Fatalf("PSK age %v after a rotation interval", s.Age)
	}
	if a.inst.closes(b.pub)+b.inst.closes(a.pub) != 0 {
		t.Fatal("a healthy pair was failed closed")
	}
	// Many rotations: the epoch keeps pace with time.
	c.run(10 * testRotate)
	c.agree(a, b)
	if s := c.status(a, b); s.Epoch < 11 || s.Epoch > 13 {
		t.Fatalf("epoch %d after 11 intervals", s.Epoch)
	}
}

func TestManyPeersAllAgree(t *testing.T) {
	c := newCluster(t, 5)
	c.step(TickInterval)
	for i, a := range c.nodes {
		for _, b := range c.nodes[i+1:] {
			c.agree(a, b)
		}
	}
	// Each pair has its own key.
	seen := map[Key]bool{}
	for i, a := range c.nodes {
		for _, b := range c.nodes[i+1:] {
			k, _ := a.inst.get(b.pub)
			if seen[k] {
				t.Fatal("two pairs share a PSK")
			}
			seen[k] = true
		}
	}
}

func TestRestartRecoversInSeconds(t *testing.T) {
	for _, restart := range []string{"initiator", "responder"} {
		t.Run(restart, func(t *testing.T) {
			c := newCluster(t, 2)
			c.step(TickInterval)
			c.run(3 * testRotate / 2) // into the chain: epoch 2
			old := c.agree(c.nodes[0], c.nodes[1])
			var r *node
			for _, nd := range c.nodes {
				other := c.nodes[0]
				if nd == other {
					other = c.nodes[1]
				}
				if isInitiator(nd.pub, other.pub) == (restart == "initiator") {
					r = nd
				}
			}
			c.start(r)
			c.setPeers(r)
			// Until the exchange, the restarted node holds no key (wgtun
			// gives the peer a random one): not the classical zero key.
			for _, nd := range c.nodes {
				if nd == r {
					continue
				}
				if k, ok := r.inst.get(nd.pub); ok {
					t.Fatalf("restarted node set %x before any exchange", k[:4])
				}
			}
			c.run(3 * time.Second)
			k := c.agree(c.nodes[0], c.nodes[1])
			if k == old {
				t.Fatal("the restarted node agreed on the old key")
			}
		})
	}
}

// TestRestartedNodeExchangesAtOnce: a restarted node, in either role,
// agrees with its peer as soon as it learns its peers, before any tick
// (waiting for one would add up to TickInterval to every restart's
// blackout).
func TestRestartedNodeExchangesAtOnce(t *testing.T) {
	for _, restart := range []string{"initiator", "responder"} {
		t.Run(restart, func(t *testing.T) {
			c := newCluster(t, 2)
			a, b := c.nodes[0], c.nodes[1]
			c.step(TickInterval)
			c.run(3 * testRotate / 2)
			c.agree(a, b)
			r := a
			if isInitiator(a.pub, b.pub) != (restart == "initiator") {
				r = b
			}
			c.start(r)
			c.setPeers(r)
			c.net.pump(t) // no tick, no time passes
			c.agree(a, b)
			if s := c.status(a, b); s.Epoch != 1 {
				t.Fatalf("epoch %d after the restart, want 1 (a new chain)", s.Epoch)
			}
		})
	}
}

// TestRestartedResponderIsAnsweredAtOnce: a responder that restarts
// gets its key from its first Poke, before any tick, even right after a
// rotation, and even if the initiator's rotation Init was lost while it
// was down (the Init is resent at once, not a second later); only Pokes
// closer together than minPokeGap wait, and only for the gap, not for the
// next Poke.
func TestRestartedResponderIsAnsweredAtOnce(t *testing.T) {
	for _, tc := range []string{"right after a rotation", "rotation Init lost", "second restart within the gap"} {
		t.Run(tc, func(t *testing.T) {
			c := newCluster(t, 2)
			a, b := c.nodes[0], c.nodes[1]
			c.step(TickInterval)
			ini, r := a, b
			if !isInitiator(a.pub, b.pub) {
				ini, r = b, a
			}
			// Step until a rotation has just happened.
			epoch := c.status(a, b).Epoch
			for i := 0; c.status(a, b).Epoch == epoch; i++ {
				if i > int(2*testRotate/TickInterval) {
					t.Fatal("no rotation")
				}
				c.step(TickInterval)
			}
			c.agree(a, b)
			restart := func() {
				c.start(r)
				c.setPeers(r)
				c.net.pump(t) // no tick, no time passes
			}
			switch tc {
			case "rotation Init lost":
				c.net.filter = func(p packet) []packet { return nil } // r is down
				for i := 0; ini.m.peers[r.pub].att == nil; i++ {
					if i > int(2*testRotate/TickInterval) {
						t.Fatal("no rotation started")
					}
					c.step(TickInterval)
				}
				c.net.filter = nil
			case "second restart within the gap":
				restart()
				c.agree(a, b)
				c.step(TickInterval)
			}
			restart()
			if tc == "second restart within the gap" {
				if s := c.status(r, ini); s.State == StatePQ {
					t.Fatal("agreed although the Poke came within the gap")
				}
				c.step(minPokeGap - TickInterval) // past the gap, not yet the next Poke
			}
			c.agree(a, b)
			if s := c.status(a, b); s.Epoch != 1 {
				t.Fatalf("epoch %d, want 1 (a new chain)", s.Epoch)
			}
		})
	}
}

func TestLostConfirmHeals(t *testing.T) {
	c := newCluster(t, 2)
	dropped := 0
	c.net.filter = func(p packet) []packet {
		if MsgType(p.b[0]) == MsgConfirm && dropped < 3 {
			dropped++
			return nil
		}
		return []packet{p}
	}
	c.run(10 * time.Second)
	if dropped != 3 {
		t.Fatalf("dropped %d confirms", dropped)
	}
	c.agree(c.nodes[0], c.nodes[1])
}

func TestLostAckHeals(t *testing.T) {
	c := newCluster(t, 2)
	c.net.filter = func(p packet) []packet {
		if MsgType(p.b[0]) == MsgAck {
			return nil
		}
		return []packet{p}
	}
	c.run(6 * time.Second)
	c.net.filter = nil
	c.run(6 * time.Second)
	c.agree(c.nodes[0], c.nodes[1])
	ini, res := c.nodes[0], c.nodes[1]
	if !isInitiator(ini.pub, res.pub) {
		ini, res = res, ini
	}
	if s := c.status(ini, res); s.State != StatePQ {
		t.Fatalf("initiator state %s after acks flow again", s.State)
	}
}

func TestClassicalPeer(t *testing.T) {
	for _, mode := range []Mode{ModeOn, ModeRequired} {
		t.Run(mode.String(), func(t *testing.T) {
			clk := newClock()
			priv, _ := newKey(t)
			_, peerPub := newKey(t)
			inst := newInstaller()
			m, err := New(Config{Mode: mode, PrivateKey: priv, Now: clk.Now}, endpoint{n: newNetwork()}, inst)
			if err != nil {
				t.Fatal(err)
			}
			m.SetPeers([]Peer{{Key: peerPub, PQ: false, Active: true}})
			st := m.Status()[0]
			k, set := inst.get(peerPub)
			switch mode {
			case ModeOn:
				if st.State != StateClassical || !set || k != (Key{}) {
					t.Fatalf("mode on: state %s, key set %v %x; want classical with the zero key", st.State, set, k[:4])
				}
			case ModeRequired:
				if st.State != StateClosed || inst.closes(peerPub) != 1 {
					t.Fatalf("mode required: state %s, %d closes; want closed", st.State, inst.closes(peerPub))
				}
			}
			checkCounts(t, m)
			// The peer starts advertising PQ: it leaves classical and is
			// locked (random key) until an exchange.
			m.SetPeers([]Peer{{Key: peerPub, PQ: true, Addr: mustAddr("192.168.1.9:51821"), Active: true}})
			if st := m.Status()[0]; st.State != StatePending {
				t.Fatalf("state %s after the peer advertised PQ", st.State)
			}
			if k, _ := inst.get(peerPub); k == (Key{}) {
				t.Fatal("a PQ peer still holds the zero (classical) key")
			}
		})
	}
}

func TestOnDemandInactivePeerIsNotRotated(t *testing.T) {
	c := newCluster(t, 2)
	c.step(TickInterval)
	c.agree(c.nodes[0], c.nodes[1])
	for _, nd := range c.nodes {
		var ps []Peer
		for _, o := range c.nodes {
			if o != nd {
				ps = append(ps, Peer{Key: o.pub, Addr: o.addr, PQ: true, Active: false})
			}
		}
		nd.m.SetPeers(ps)
	}
	sent := c.net.sent
	c.run(testRotate + 10*time.Second)
	if c.net.sent != sent {
		t.Fatalf("%d packets for an inactive peer", c.net.sent-sent)
	}
	// Active again, with a stale key: exchanged at once.
	for _, nd := range c.nodes {
		c.setPeers(nd)
	}
	c.step(TickInterval)
	c.agree(c.nodes[0], c.nodes[1])
}

func TestRemovedPeerIsForgotten(t *testing.T) {
	c := newCluster(t, 2)
	c.step(TickInterval)
	a, b := c.nodes[0], c.nodes[1]
	a.m.SetPeers(nil)
	checkCounts(t, a.m)
	if _, ok := a.inst.get(b.pub); ok {
		t.Fatal("the key of a removed peer is still recorded")
	}
	if len(a.m.Status()) != 0 {
		t.Fatal("a removed peer is still in the status")
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"off": ModeOff, "on": ModeOn, "required": ModeRequired, "ON": ModeOn} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseMode("maybe"); err == nil {
		t.Error("ParseMode(maybe) accepted")
	}
}

// TestNodeRekey: a node that changes its WireGuard key is a new peer: the
// old key's state is forgotten and a new chain starts.
func TestNodeRekey(t *testing.T) {
	c := newCluster(t, 2)
	a, b := c.nodes[0], c.nodes[1]
	c.step(TickInterval)
	c.run(testRotate) // epoch 2
	c.agree(a, b)
	oldPub := b.pub
	b.priv, b.pub = newKey(t)
	c.start(b)
	c.setPeers(b)
	c.setPeers(a)
	if _, ok := a.inst.get(oldPub); ok {
		t.Fatal("the old key's preshared key is still recorded")
	}
	c.run(3 * time.Second)
	c.agree(a, b)
	if s := c.status(a, b); s.Epoch != 1 {
		t.Fatalf("the new key's chain is at epoch %d, want 1", s.Epoch)
	}
	if len(a.m.Status()) != 1 {
		t.Fatalf("%d peers in the status after a re-key, want 1", len(a.m.Status()))
	}
}

// TestUpdateAndSetActive: Update changes only the peers it names;
// SetActive stops and resumes rotation.
func TestUpdateAndSetActive(t *testing.T) {
	c := newCluster(t, 3)
	a, b, o := c.nodes[0], c.nodes[1], c.nodes[2]
	c.step(TickInterval)
	ko := c.agree(a, o)
	a.m.Update(nil, []Key{b.pub})
	if _, ok := a.inst.get(b.pub); ok || len(a.m.Status()) != 1 {
		t.Fatal("Update did not forget the removed peer")
	}
	if k, _ := a.inst.get(o.pub); k != ko || c.status(a, o).State != StatePQ {
		t.Fatal("Update disturbed a peer it did not name")
	}
	a.m.Update([]Peer{{Key: b.pub, Addr: b.addr, PQ: true, Active: true}}, nil)
	if s := c.status(a, b); s.State != StatePending {
		t.Fatalf("re-added peer is %s, want pending", s.State)
	}
	c.run(3 * time.Second)
	c.agree(a, b)

	for _, nd := range c.nodes {
		nd.m.SetActive(func(Key) bool { return false })
	}
	sent := c.net.sent
	c.run(testRotate + 5*time.Second)
	if c.net.sent != sent {
		t.Fatalf("%d packets with every peer inactive", c.net.sent-sent)
	}
	for _, nd := range c.nodes {
		nd.m.SetActive(func(Key) bool { return true })
	}
	c.step(TickInterval)
	c.agree(a, b)
	c.agree(a, o)
}
