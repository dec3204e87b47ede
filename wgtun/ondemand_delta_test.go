package wgtun

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	"go.uber.org/zap"
)

// randomPeer draws a peer from a small space, so that random changes
// collide: shared prefixes (claimed by two keys), shared endpoint IPs,
// nested prefixes of several lengths, both families, IPv4-mapped
// endpoints.
func randomPeer(r *rand.Rand, k Key) Peer {
	p := Peer{PublicKey: k}
	for range r.IntN(4) {
		var s string
		switch r.IntN(5) {
		case 0:
			s = fmt.Sprintf("10.%d.0.0/16", r.IntN(3))
		case 1, 2:
			s = fmt.Sprintf("10.%d.%d.0/24", r.IntN(3), r.IntN(6))
		case 3:
			s = fmt.Sprintf("fd00:%x::/64", r.IntN(6))
		default:
			s = fmt.Sprintf("10.%d.%d.%d/32", r.IntN(3), r.IntN(6), r.IntN(4))
		}
		p.AllowedIPs = append(p.AllowedIPs, netip.MustParsePrefix(s))
	}
	switch r.IntN(4) {
	case 0:
	case 1:
		p.Endpoint = netip.MustParseAddrPort(fmt.Sprintf("[::ffff:192.168.0.%d]:51820", r.IntN(4)))
	case 2:
		p.Endpoint = netip.MustParseAddrPort(fmt.Sprintf("[fd99::%d]:51820", r.IntN(4)))
	default:
		p.Endpoint = netip.MustParseAddrPort(fmt.Sprintf("192.168.0.%d:%d", r.IntN(4), 51820+r.IntN(2)))
	}
	return normalizePeer(p)
}

// equalTables compares two lookup tables: the same levels in the same
// order, the same peer in every slot, the same peers per endpoint IP (in
// any order).
func equalTables(a, b *odTable) error {
	if len(a.v4) != len(b.v4) || len(a.v6) != len(b.v6) {
		return fmt.Errorf("levels: %d+%d, want %d+%d", len(a.v4), len(a.v6), len(b.v4), len(b.v6))
	}
	for i := range a.v4 {
		if a.v4[i].mask != b.v4[i].mask || !maps.Equal(a.v4[i].m, b.v4[i].m) {
			return fmt.Errorf("IPv4 level %d (mask %x, want %x) differs", i, a.v4[i].mask, b.v4[i].mask)
		}
	}
	for i := range a.v6 {
		if a.v6[i].hi != b.v6[i].hi || a.v6[i].lo != b.v6[i].lo || !maps.Equal(a.v6[i].m, b.v6[i].m) {
			return fmt.Errorf("IPv6 level %d differs", i)
		}
	}
	if err := equalSets(a.byIP4, b.byIP4); err != nil {
		return fmt.Errorf("IPv4 endpoints: %w", err)
	}
	if err := equalSets(a.byIP6, b.byIP6); err != nil {
		return fmt.Errorf("IPv6 endpoints: %w", err)
	}
	return nil
}

func equalSets[K comparable](a, b map[K]odPeerSet) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d IPs, want %d", len(a), len(b))
	}
	members := func(s odPeerSet) map[*odPeer]int {
		m := map[*odPeer]int{s.first: 1}
		for _, p := range s.more {
			m[p]++
		}
		return m
	}
	for k, s := range a {
		if !maps.Equal(members(s), members(b[k])) {
			return fmt.Errorf("IP %v: peers differ", k)
		}
	}
	return nil
}

// TestUpdateDesiredMatchesRebuild: random sequences of peer changes
// (adds, removes, moved prefixes and endpoints, keys in both lists,
// activations) applied as deltas leave the lookup table, the desired set
// and the write target exactly as a rebuild from the whole desired set
// gives them; and the tables the packet paths held before each change
// are left as they were.
func TestUpdateDesiredMatchesRebuild(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	od := newOnDemand(defaultIdleTimeout, Key{}, zap.NewNop())
	keys := make([]Key, 12)
	for i := range keys {
		keys[i] = testKey(byte(i + 1))
	}
	initial := map[Key]Peer{}
	for _, k := range keys[:6] {
		initial[k] = randomPeer(r, k)
	}
	od.setDesiredLocked(initial, nil, timeZero)
	for step := range 3000 {
		before := od.table.Load()
		snapshot := buildODTable(maps.Clone(od.desired), od.peers)
		var upsert []Peer
		var remove []Key
		for range 1 + r.IntN(3) {
			k := keys[r.IntN(len(keys))]
			if r.IntN(3) == 0 {
				remove = append(remove, k)
			} else {
				upsert = append(upsert, randomPeer(r, k))
			}
		}
		// Activations happen between changes, as the activator makes them.
		for _, p := range od.peers {
			if !p.active.Load() && r.IntN(4) == 0 {
				od.markActive(p, timeZero)
			}
		}
		target := od.updateDesiredLocked(upsert, remove)

		want := map[Key]Peer{}
		for k, p := range od.desired {
			want[k] = p
		}
		if err := equalTables(od.table.Load(), buildODTable(want, od.peers)); err != nil {
			t.Fatalf("step %d (upsert %v, remove %v): table: %v", step, upsert, remove, err)
		}
		if err := equalTables(before, snapshot); err != nil {
			t.Fatalf("step %d: the previous table changed under its readers: %v", step, err)
		}
		wantTarget := map[Key]Peer{}
		for k, p := range od.peers {
			if p.active.Load() {
				wantTarget[k] = od.desired[k]
			}
		}
		if !reflect.DeepEqual(target, wantTarget) {
			t.Fatalf("step %d: target %v, want %v", step, target, wantTarget)
		}
		if len(od.peers) != len(od.desired) || int(od.nDesired.Load()) != len(od.desired) {
			t.Fatalf("step %d: %d peers, %d desired, counted %d", step, len(od.peers), len(od.desired), od.nDesired.Load())
		}
		for k := range od.desired {
			if od.peers[k] == nil {
				t.Fatalf("step %d: desired %v has no state", step, k)
			}
		}
		if int(od.nConfigured.Load()) != len(od.active) {
			t.Fatalf("step %d: %d configured, %d active", step, od.nConfigured.Load(), len(od.active))
		}
		if step%97 == 0 { // a resync now and then, as the agent's
			od.setDesiredLocked(maps.Clone(od.desired), nil, timeZero)
		}
	}
}

// The delta path is what UpdatePeers takes with on-demand peers; its cost
// must follow the change, not the desired set.
func TestUpdateDesiredKeepsUntouchedLevels(t *testing.T) {
	od := newOnDemand(defaultIdleTimeout, Key{}, zap.NewNop())
	desired := map[Key]Peer{}
	for i := range 200 {
		k := Key{byte(i), byte(i >> 8), 1}
		desired[k] = normalizePeer(Peer{PublicKey: k,
			AllowedIPs: pfxs(fmt.Sprintf("10.%d.%d.0/24", i/200, i%200), fmt.Sprintf("fd00:%x::/64", i)),
			Endpoint:   netip.MustParseAddrPort(fmt.Sprintf("192.168.%d.%d:51820", i/200, i%200))})
	}
	od.setDesiredLocked(desired, nil, timeZero)
	before := od.table.Load()
	k := Key{7, 0, 1}
	p := desired[k]
	p.AllowedIPs = pfxs("10.0.7.0/24", "10.99.0.0/24", "fd00:7::/64")
	od.updateDesiredLocked([]Peer{normalizePeer(p)}, nil)
	after := od.table.Load()
	if reflect.ValueOf(after.v6[0].m).Pointer() != reflect.ValueOf(before.v6[0].m).Pointer() {
		t.Error("the IPv6 level was copied though no IPv6 prefix changed")
	}
	if reflect.ValueOf(after.byIP4).Pointer() != reflect.ValueOf(before.byIP4).Pointer() {
		t.Error("the endpoint map was copied though no endpoint changed")
	}
	if got := after.lookupAddr(netip.MustParseAddr("10.99.0.1")); got == nil || got.key != k {
		t.Errorf("the new prefix looks up %v", got)
	}
	if got := before.lookupAddr(netip.MustParseAddr("10.99.0.1")); got != nil {
		t.Errorf("the old table sees the new prefix: %v", got)
	}
}
