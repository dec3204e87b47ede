package controller

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/crosswire/crosswire/proxy"
)

// randomNode draws a Node from a small universe built to collide: a few
// names, pod CIDRs that overlap each other, keys shared between nodes (one
// of them this node's own), endpoints inside pod CIDRs, malformed values
// and creation times that tie.
func randomNode(rng *rand.Rand, name string) *corev1.Node {
	pick := func(opts ...string) string { return opts[rng.IntN(len(opts))] }
	var opts []nodeOpt
	opts = append(opts, created(rng.IntN(4)))
	switch rng.IntN(6) {
	case 0:
		opts = append(opts, withPodCIDR(pick("10.0.0.0/24", "10.0.1.0/24", "10.0.0.0/16", "10.0.0.128/25", "fd00::/64")))
	case 1:
		opts = append(opts, withPodCIDRs(pick("10.0.2.0/24", "10.0.0.0/24"), pick("fd00:1::/64", "fd00::/48")))
	case 2:
		opts = append(opts, withCIDRAnn(pick("10.0.3.0/24", "10.0.3.0/24,10.0.4.0/24", "bogus", "10.0.0.0/25")))
	case 3:
		opts = append(opts, withPodCIDR(pick("10.0.5.0/24", "10.0.6.0/24", "10.0.7.0/24")))
	case 4:
		opts = append(opts, withPodCIDR(fmt.Sprintf("10.1.%d.0/24", rng.IntN(4))))
	} // 5: no pod CIDRs
	switch rng.IntN(5) {
	case 0:
		opts = append(opts, withKey(testKey(byte(1+rng.IntN(4)))))
	case 1:
		opts = append(opts, withKey(testKey(9))) // this node's own key below
	case 2:
		opts = append(opts, withKey("not a key"))
	case 3:
		opts = append(opts, withKey(testKey(byte(10+rng.IntN(3)))))
	}
	switch rng.IntN(5) {
	case 0:
		opts = append(opts, withEndpoint(pick("192.168.0.1:51820", "192.168.0.2:51820", "10.0.0.5:51820", "10.0.3.9:51820", "[fd00::5]:51820")))
	case 1:
		opts = append(opts, withIP(pick("192.168.0.3", "10.0.1.7", "10.1.2.3")))
	case 2:
		opts = append(opts, withOverride(pick("192.168.0.4", "10.0.5.5", "0.0.0.0")))
	case 3:
		opts = append(opts, withEndpoint("garbage"))
	}
	n := mkNode(name, opts...)
	return n
}

// TestTrackerMatchesBuild is the reference check of the incremental path:
// random series of Node adds, changes, deletions (re-adds among them),
// tombstone expiries and Resets that drop Nodes, after each of which the
// tracker's state must be what Build computes over all current Nodes (in
// the same order of seniority) and the tombstones, the tombstones must be
// those the test's own model keeps, and the Changes it returned, applied
// in order, must add up to that state.
func TestTrackerMatchesBuild(t *testing.T) {
	names := []string{"self", "a", "b", "c", "d", "e", "f", "g"}
	const ttl, maxGone = 10 * time.Second, 3
	// Steps where a tombstone kept this node's Local, or fenced a deleted
	// peer: a series that never did would prove nothing about them.
	var keptLocal, fencedGone int
	defer func() {
		t.Logf("steps with a tombstone's Local: %d, with a deleted peer fenced: %d", keptLocal, fencedGone)
		if keptLocal < 50 || fencedGone < 100 {
			t.Errorf("the random series exercised tombstones too little")
		}
	}()
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		fence := seed%2 == 1
		tr := NewTracker("self", pubKey(9), 51820, fence)
		now := t0
		tr.clock = func() time.Time { return now }
		tr.ttl, tr.maxGone = ttl, maxGone
		current := map[string]*corev1.Node{}
		seen := newSeniority() // the test's own record of who came first
		graves := &graveModel{self: "self", fence: fence, ttl: ttl, max: maxGone, gone: map[string]Tombstone{}}
		var want State           // Build's, after the last step
		var applied State        // the Changes, applied in order
		engine := desiredModel{} // their Deltas, applied as the engine does
		for step := range 60 {
			now = now.Add(time.Second)
			name := names[rng.IntN(len(names))]
			op := "set " + name
			switch r := rng.IntN(20); {
			case r < 5:
				op = "delete " + name
				if _, live := current[name]; live {
					graves.bury(name, want, now)
					graves.overflow()
				}
				delete(current, name)
				seen.remove(name)
				c := tr.Set(name, nil)
				applied, engine = c.applyTo(applied), engine.apply(t, c.Delta())
			case r == 5:
				op = "expire"
				graves.expire(now)
				c := tr.Expire()
				applied, engine = c.applyTo(applied), engine.apply(t, c.Delta())
			case r == 6:
				// A relist that misses some Nodes: they leave tombstones
				// as if deleted.
				op = "reset"
				var list []*corev1.Node
				for _, m := range names {
					n, live := current[m]
					switch {
					case !live:
					case rng.IntN(3) == 0:
						graves.bury(m, want, now)
						delete(current, m)
						seen.remove(m)
					default:
						list = append(list, n)
					}
				}
				graves.expire(now)
				applied = tr.Reset(list)
				engine = desiredModel{}.replace(applied.Desired())
			default:
				n := randomNode(rng, name)
				current[name] = n
				seen.add(name)
				delete(graves.gone, name)
				c := tr.Set(name, n)
				applied, engine = c.applyTo(applied), engine.apply(t, c.Delta())
			}
			var all []*corev1.Node
			for _, n := range current {
				all = append(all, n)
			}
			want = Build(Input{Self: "self", SelfKey: pubKey(9), DefaultPort: 51820, Nodes: all, Seen: seen.seen, Fence: fence, Gone: graves.gone})
			if got := tr.tombstones(); !reflect.DeepEqual(got, graves.gone) {
				t.Fatalf("seed %d step %d (%s): tombstones %v, want %v", seed, step, op, got, graves.gone)
			}
			if !want.SelfFound && len(want.Local) > 0 {
				keptLocal++
			}
			if slices.ContainsFunc(want.Fenced, func(p proxy.Peer) bool { return current[p.Name] == nil }) {
				fencedGone++
			}
			if err := tr.checkIndex(); err != nil {
				t.Fatalf("seed %d step %d (%s): %v", seed, step, op, err)
			}
			got := tr.State()
			if !stateEqual(got, want) {
				t.Fatalf("seed %d step %d (%s): tracker\n%s\nBuild\n%s", seed, step, op, fmtState(got), fmtState(want))
			}
			if !stateEqual(applied, want) {
				t.Fatalf("seed %d step %d (%s): changes add up to\n%s\nwant\n%s", seed, step, op, fmtState(applied), fmtState(want))
			}
			if d := (desiredModel{}).replace(want.Desired()); !engine.equal(d) {
				t.Fatalf("seed %d step %d (%s): deltas add up to %+v, want %+v", seed, step, op, engine, d)
			}
		}
	}
}

// desiredModel is what the engine keeps of the Desired and Deltas it is
// given: peers (fenced ones keyless) by name, and the local CIDRs.
type desiredModel struct {
	peers map[string]proxy.Peer
	local []netip.Prefix
}

func (desiredModel) replace(d proxy.Desired) desiredModel {
	m := desiredModel{peers: map[string]proxy.Peer{}, local: d.Local}
	for _, p := range d.Peers {
		m.peers[p.Name] = p
	}
	if len(m.local) == 0 {
		m.local = nil
	}
	return m
}

func (m desiredModel) equal(o desiredModel) bool {
	return slices.Equal(m.local, o.local) && maps.EqualFunc(m.peers, o.peers, samePeer)
}

// apply applies d as the engine does (removals, then upserts), and fails
// on a name both removed and upserted: the engine would tear its peer down
// between the two.
func (m desiredModel) apply(t *testing.T, d proxy.Delta) desiredModel {
	t.Helper()
	next := desiredModel{peers: maps.Clone(m.peers), local: m.local}
	if next.peers == nil {
		next.peers = map[string]proxy.Peer{}
	}
	for _, name := range d.Remove {
		if slices.ContainsFunc(d.Upsert, func(p proxy.Peer) bool { return p.Name == name }) {
			t.Fatalf("delta removes and upserts %s: %+v", name, d)
		}
		delete(next.peers, name)
	}
	for _, p := range d.Upsert {
		next.peers[p.Name] = p
	}
	if d.LocalChanged {
		next.local = d.Local
		if len(next.local) == 0 {
			next.local = nil
		}
	}
	return next
}

// graveModel is the test's own account of the tombstones a tracker keeps,
// written from the rules, not from the tracker's code.
type graveModel struct {
	self  string
	fence bool
	ttl   time.Duration
	max   int
	gone  map[string]Tombstone
}

// bury records the tombstone of live node name, deleted at now from
// state st: the pod CIDRs it held there (none unless fencing).
func (g *graveModel) bury(name string, st State, now time.Time) {
	var held []netip.Prefix
	switch {
	case !g.fence:
	case name == g.self:
		held = st.Local
	case g.fence:
		for _, p := range slices.Concat(st.Peers, st.Fenced) {
			if p.Name == name {
				held = p.PodCIDRs
			}
		}
	}
	delete(g.gone, name)
	if len(held) > 0 {
		g.gone[name] = Tombstone{PodCIDRs: slices.Clone(held), Deleted: now}
	}
}

// expire drops those at least ttl old, then the oldest over the cap.
func (g *graveModel) expire(now time.Time) {
	for name, tomb := range g.gone {
		if now.Sub(tomb.Deleted) >= g.ttl {
			delete(g.gone, name)
		}
	}
	g.overflow()
}

func (g *graveModel) overflow() {
	for len(g.gone) > g.max {
		oldest := ""
		for name, tomb := range g.gone {
			if o, ok := g.gone[oldest]; !ok || tomb.Deleted.Before(o.Deleted) || (tomb.Deleted.Equal(o.Deleted) && name < oldest) {
				oldest = name
			}
		}
		delete(g.gone, oldest)
	}
}

// TestTrackerResetIsBuild checks that Reset is Build, and that a Set
// after it starts from there.
func TestTrackerResetIsBuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var nodes []*corev1.Node
	for _, name := range []string{"self", "a", "b", "c", "d"} {
		nodes = append(nodes, randomNode(rng, name))
	}
	tr := NewTracker("self", pubKey(9), 51820, false)
	got := tr.Reset(nodes)
	want := Build(Input{Self: "self", SelfKey: pubKey(9), DefaultPort: 51820, Nodes: nodes})
	if !stateEqual(got, want) || !stateEqual(tr.State(), want) {
		t.Fatalf("Reset\n%s\nState\n%s\nBuild\n%s", fmtState(got), fmtState(tr.State()), fmtState(want))
	}
	if c := tr.Set("a", nodes[1]); !c.Empty() {
		t.Fatalf("setting an unchanged Node changed %+v", c)
	}
}

// TestTrackerTouchesOnlyTheComponent checks the point of the tracker: a
// Node that conflicts with nobody is decided alone.
func TestTrackerTouchesOnlyTheComponent(t *testing.T) {
	tr := NewTracker("self", pubKey(9), 51820, false)
	var nodes []*corev1.Node
	for i := range 200 {
		nodes = append(nodes, mkNode(fmt.Sprintf("n%03d", i), created(i),
			withPodCIDR(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)),
			withKey(pubKey(byte(i)).String()), withIP(fmt.Sprintf("192.168.%d.%d", i/256, 1+i%250))))
	}
	tr.Reset(nodes)
	group := map[string]bool{"n007": true}
	tr.neighbours(tr.nodes["n007"], group)
	tr.closure(group)
	if len(group) != 1 {
		t.Fatalf("an unconflicted node's group is %v, want only itself", group)
	}
	// A newcomer taking n007's CIDR joins its group, and loses to it.
	thief := mkNode("thief", created(500), withPodCIDR("10.0.7.0/24"), withKey(testKey(250)), withIP("192.168.9.9"))
	c := tr.Set("thief", thief)
	if len(c.Upsert) != 0 || c.Rejections["thief"] == "" {
		t.Fatalf("thief: %+v", c)
	}
	if _, ok := tr.peers["n007"]; !ok {
		t.Fatal("n007 lost its place to a newcomer")
	}
	// n007 leaves: the thief, now alone with the CIDR, is accepted.
	c = tr.Set("n007", nil)
	if !slices.Equal(c.Remove, []string{"n007"}) || len(c.Upsert) != 1 || c.Upsert[0].Name != "thief" {
		t.Fatalf("after n007 left: %+v", c)
	}
	if c.Rejections["thief"] != "" {
		t.Fatalf("thief still rejected: %q", c.Rejections["thief"])
	}
}

// checkIndex reports a pod CIDR index entry that is not a current claim of
// a live Node or a tombstone: a stale one would pull unrelated names into
// every later conflict component.
func (t *Tracker) checkIndex() error {
	for p, ns := range t.cidrs.owners {
		for _, n := range ns {
			var claims []netip.Prefix
			if tn, ok := t.nodes[n]; ok {
				claims = tn.cidrs()
			} else {
				claims = t.gone[n].PodCIDRs
			}
			if !slices.Contains(claims, p) {
				return fmt.Errorf("index holds %s for %s, which claims %v", p, n, claims)
			}
		}
	}
	return nil
}
