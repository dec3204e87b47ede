package controller

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"

	"github.com/crosswire/crosswire/proxy"
)

// tombCluster is this node and two peers, each with an IPv4 and an IPv6
// pod CIDR, for the tombstone tests.
func tombCluster() (self, a, b *corev1.Node) {
	self = mkNode(selfName, created(0), withPodCIDRs("10.244.0.0/24", "fd00:10:244::/64"), withIP("192.168.77.1"))
	a = mkNode("a", created(1), withPodCIDRs("10.244.1.0/24", "fd00:10:244:1::/64"), withKey(testKey(1)), withIP("192.168.77.2"))
	b = mkNode("b", created(2), withPodCIDRs("10.244.2.0/24", "fd00:10:244:2::/64"), withKey(testKey(2)), withIP("192.168.77.3"))
	return self, a, b
}

// newTombTracker is a tracker over tombCluster whose clock the test moves.
func newTombTracker(t *testing.T, fence bool) (*Tracker, *time.Time) {
	t.Helper()
	now := t0.Add(time.Hour)
	tr := NewTracker(selfName, pubKey(0xee), 51820, fence)
	tr.clock = func() time.Time { return now }
	self, a, b := tombCluster()
	st := tr.Reset([]*corev1.Node{self, a, b})
	if !st.SelfFound || len(st.Peers) != 2 || len(st.Rejected) != 0 {
		t.Fatalf("start:\n%s", fmtState(st))
	}
	return tr, &now
}

func namesOf(ps []proxy.Peer) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// checkBuild fails unless the tracker's state is Build over its Nodes and
// tombstones.
func checkBuild(t *testing.T, tr *Tracker) {
	t.Helper()
	var nodes []*corev1.Node
	for _, tn := range tr.nodes {
		nodes = append(nodes, tn.n)
	}
	want := Build(Input{Self: tr.self, SelfKey: tr.selfKey, DefaultPort: tr.defaultPort, Nodes: nodes, Seen: tr.seen.seen, Fence: tr.fence, Gone: tr.tombstones()})
	if got := tr.State(); !stateEqual(got, want) {
		t.Fatalf("tracker\n%s\nBuild\n%s", fmtState(got), fmtState(want))
	}
}

// TestSelfDeletedKeepsLocal: this node's own Node deleted (its machine and
// pods still running) keeps its pod CIDRs local in strict mode, so its
// pods' egress stays marked; SelfFound says the Node is gone. Not strict,
// it empties them as before. Its return makes
// the live Node rule again.
func TestSelfDeletedKeepsLocal(t *testing.T) {
	for _, fence := range []bool{false, true} {
		t.Run(fmt.Sprintf("fence=%v", fence), func(t *testing.T) {
			tr, _ := newTombTracker(t, fence)
			c := tr.Set(selfName, nil)
			own := pfx("10.244.0.0/24", "fd00:10:244::/64")
			if !fence {
				// Not strict: the peers drop this node's CIDRs and reach
				// it in clear, so it stops marking too, as before.
				if !c.LocalChanged || c.SelfFound || len(c.Local) != 0 || len(tr.tombstones()) != 0 {
					t.Fatalf("self deleted, not strict: LocalChanged=%v SelfFound=%v Local=%v tombstones %v, want true false none none", c.LocalChanged, c.SelfFound, c.Local, tr.tombstones())
				}
				checkBuild(t, tr)
				return
			}
			if !c.LocalChanged || c.SelfFound || !slices.Equal(c.Local, own) {
				t.Fatalf("self deleted: LocalChanged=%v SelfFound=%v Local=%v, want true false %v", c.LocalChanged, c.SelfFound, c.Local, own)
			}
			if d := c.Delta(); !slices.Equal(d.Local, own) || len(d.Remove) != 0 || len(d.Upsert) != 0 {
				t.Fatalf("delta %+v", d)
			}
			if st := tr.State(); st.SelfFound || !slices.Equal(st.Local, own) || len(st.Peers) != 2 {
				t.Fatalf("state:\n%s", fmtState(st))
			}
			checkBuild(t, tr)

			self, _, _ := tombCluster()
			c = tr.Set(selfName, self)
			if !c.LocalChanged || !c.SelfFound || !slices.Equal(c.Local, own) {
				t.Fatalf("self back: %+v", c)
			}
			if len(tr.tombstones()) != 0 {
				t.Fatalf("tombstones left: %v", tr.tombstones())
			}
			// Back with other CIDRs: the live Node's, not the tombstone's.
			tr.Set(selfName, nil)
			c = tr.Set(selfName, mkNode(selfName, created(5), withPodCIDR("10.244.9.0/24")))
			if !c.SelfFound || !slices.Equal(c.Local, pfx("10.244.9.0/24")) {
				t.Fatalf("self back with a new CIDR: %+v", c)
			}
			checkBuild(t, tr)
		})
	}
}

// TestDeletedPeerFencedOnlyInStrict: with fencing (strict mode) a deleted
// peer becomes a keyless peer with the pod CIDRs it held, which the engine
// sees as an upsert of that name (never a removal, which would let its
// traffic out in clear); without fencing it is removed as before. Its
// Node's return makes it a peer again, again as an upsert.
func TestDeletedPeerFencedOnlyInStrict(t *testing.T) {
	held := pfx("10.244.1.0/24", "fd00:10:244:1::/64")
	t.Run("strict", func(t *testing.T) {
		tr, _ := newTombTracker(t, true)
		c := tr.Set("a", nil)
		if !slices.Equal(c.Remove, []string{"a"}) || len(c.Fence) != 1 || c.Fence[0].Name != "a" || !slices.Equal(c.Fence[0].PodCIDRs, held) {
			t.Fatalf("a deleted: %+v", c)
		}
		if c.Fence[0].PublicKey != (proxy.Peer{}).PublicKey || c.Fence[0].Endpoint.IsValid() {
			t.Fatalf("fenced with a key or endpoint: %+v", c.Fence[0])
		}
		d := c.Delta()
		if len(d.Remove) != 0 || len(d.Upsert) != 1 || d.Upsert[0].Name != "a" || !d.Upsert[0].PublicKey.IsZero() {
			t.Fatalf("delta %+v, want one keyless upsert of a", d)
		}
		if len(c.Rejected) != 0 || len(c.Rejections) != 0 {
			t.Fatalf("a deleted Node is not rejected: %+v", c)
		}
		checkBuild(t, tr)

		_, a, _ := tombCluster()
		c = tr.Set("a", a)
		if !slices.Equal(c.Unfence, []string{"a"}) || len(c.Upsert) != 1 || c.Upsert[0].PublicKey != pubKey(1) {
			t.Fatalf("a back: %+v", c)
		}
		if d := c.Delta(); len(d.Remove) != 0 || len(d.Upsert) != 1 {
			t.Fatalf("a back: delta %+v", d)
		}
		if len(tr.tombstones()) != 0 {
			t.Fatalf("tombstones left: %v", tr.tombstones())
		}
		checkBuild(t, tr)
	})
	t.Run("plain", func(t *testing.T) {
		tr, _ := newTombTracker(t, false)
		c := tr.Set("a", nil)
		if !slices.Equal(c.Remove, []string{"a"}) || len(c.Fence) != 0 {
			t.Fatalf("a deleted: %+v", c)
		}
		if d := c.Delta(); !slices.Equal(d.Remove, []string{"a"}) || len(d.Upsert) != 0 {
			t.Fatalf("delta %+v", d)
		}
		if len(tr.tombstones()) != 0 {
			t.Fatalf("a tombstone kept for a peer without fencing: %v", tr.tombstones())
		}
		checkBuild(t, tr)
	})
}

// TestLiveNodeTakesTombstoneCIDR: a tombstone never keeps a pod CIDR from
// a live Node, however young: a Node claiming one is accepted, and the
// tombstone lets go of that CIDR in the same Change (the rest stays
// fenced, or local).
func TestLiveNodeTakesTombstoneCIDR(t *testing.T) {
	t.Run("peer", func(t *testing.T) {
		tr, now := newTombTracker(t, true)
		tr.Set("a", nil)
		*now = now.Add(time.Second)
		c := tr.Set("new", mkNode("new", created(100), withPodCIDR("10.244.1.0/24"), withKey(testKey(7)), withIP("192.168.77.9")))
		if len(c.Upsert) != 1 || c.Upsert[0].Name != "new" || len(c.Rejections) != 0 {
			t.Fatalf("newcomer not accepted: %+v", c)
		}
		if len(c.Fence) != 1 || c.Fence[0].Name != "a" || !slices.Equal(c.Fence[0].PodCIDRs, pfx("fd00:10:244:1::/64")) {
			t.Fatalf("tombstone keeps %+v, want only fd00:10:244:1::/64", c.Fence)
		}
		checkBuild(t, tr)
		// The other CIDR too: nothing is left fenced under a's name.
		n := mkNode("new", created(100), withPodCIDRs("10.244.1.0/24", "fd00:10:244:1::/64"), withKey(testKey(7)), withIP("192.168.77.9"))
		c = tr.Set("new", n)
		if !slices.Equal(c.Unfence, []string{"a"}) || len(c.Upsert) != 1 {
			t.Fatalf("tombstone not released: %+v", c)
		}
		if d := c.Delta(); !slices.Equal(d.Remove, []string{"a"}) {
			t.Fatalf("delta %+v, want a removed", d)
		}
		checkBuild(t, tr)
		// The newcomer goes: the tombstone's CIDRs are free again (its own
		// tombstone, newer, holds the same ones).
		*now = now.Add(time.Second)
		c = tr.Set("new", nil)
		if d := c.Delta(); len(d.Remove) != 0 || len(d.Upsert) != 1 || d.Upsert[0].Name != "new" || !d.Upsert[0].PublicKey.IsZero() {
			t.Fatalf("newcomer deleted: delta %+v", d)
		}
		checkBuild(t, tr)
	})
	for _, fence := range []bool{true} {
		t.Run(fmt.Sprintf("self/fence=%v", fence), func(t *testing.T) {
			tr, _ := newTombTracker(t, fence)
			tr.Set(selfName, nil)
			c := tr.Set("new", mkNode("new", created(100), withPodCIDR("10.244.0.0/25"), withKey(testKey(7)), withIP("192.168.77.9")))
			if len(c.Upsert) != 1 || c.Upsert[0].Name != "new" || len(c.Rejections) != 0 {
				t.Fatalf("newcomer not accepted: %+v", c)
			}
			if !c.LocalChanged || !slices.Equal(c.Local, pfx("fd00:10:244::/64")) {
				t.Fatalf("Local %v (changed %v), want only fd00:10:244::/64", c.Local, c.LocalChanged)
			}
			checkBuild(t, tr)
		})
	}
}

// TestTombstoneYields covers the rest of Build's order: a CIDR fenced for
// an overlap beats a tombstone, a newer tombstone an older, and a
// tombstone CIDR holding a peer's endpoint is not used.
func TestTombstoneYields(t *testing.T) {
	self := mkNode(selfName, created(0), withPodCIDR("10.244.0.0/24"), withIP("192.168.77.1"))
	good := mkNode("good", created(1), withPodCIDR("10.244.1.0/24"), withKey(testKey(1)), withIP("192.168.77.2"))
	// Rejected for 10.244.1.0/25; 10.244.5.0/24 is fenced as its own.
	thief := mkNode("thief", created(2), withPodCIDRs("10.244.1.0/25", "10.244.5.0/24"), withKey(testKey(2)), withIP("192.168.77.3"))
	// Its endpoint lies in old's tombstone.
	inside := mkNode("inside", created(3), withPodCIDR("10.244.8.0/24"), withKey(testKey(3)), withIP("10.244.7.9"))
	gone := map[string]Tombstone{
		"old":   {PodCIDRs: pfx("10.244.5.0/24", "10.244.6.0/24", "10.244.7.0/24"), Deleted: t0.Add(10 * time.Second)},
		"newer": {PodCIDRs: pfx("10.244.6.0/25", "10.244.9.0/24"), Deleted: t0.Add(20 * time.Second)},
		// A live Node of the name: ignored.
		"good": {PodCIDRs: pfx("10.244.10.0/24"), Deleted: t0},
	}
	st := Build(Input{Self: selfName, DefaultPort: 51820, Nodes: []*corev1.Node{self, good, thief, inside}, Fence: true, Gone: gone})
	want := []proxy.Peer{
		{Name: "newer", PodCIDRs: pfx("10.244.6.0/25", "10.244.9.0/24")},
		{Name: "thief", PodCIDRs: pfx("10.244.5.0/24")},
	}
	if !reflect.DeepEqual(st.Fenced, want) {
		t.Fatalf("fenced %+v, want %+v", st.Fenced, want)
	}
	if !slices.Equal(namesOf(st.Peers), []string{"good", "inside"}) {
		t.Fatalf("peers %v", namesOf(st.Peers))
	}
	// Without fencing no tombstone counts, this node's own neither.
	st = Build(Input{Self: selfName, DefaultPort: 51820, Nodes: []*corev1.Node{good}, Gone: map[string]Tombstone{
		selfName: {PodCIDRs: pfx("10.244.0.0/24"), Deleted: t0},
		"old":    {PodCIDRs: pfx("10.244.5.0/24"), Deleted: t0},
	}})
	if st.SelfFound || len(st.Local) != 0 || len(st.Fenced) != 0 {
		t.Fatalf("plain:\n%s", fmtState(st))
	}
}

// TestTombstoneTTL: a tombstone lasts TombstoneTTL, then Expire (the
// periodic rebuild's first step) drops it as a Change of its own, and
// Reset drops it too.
func TestTombstoneTTL(t *testing.T) {
	tr, now := newTombTracker(t, true)
	tr.Set(selfName, nil)
	tr.Set("a", nil)
	*now = now.Add(TombstoneTTL - time.Second)
	if c := tr.Expire(); !c.Empty() {
		t.Fatalf("expired early: %+v", c)
	}
	_, _, b := tombCluster()
	st := tr.Reset([]*corev1.Node{b})
	if len(st.Fenced) != 1 || len(st.Local) != 2 {
		t.Fatalf("Reset before the TTL:\n%s", fmtState(st))
	}
	*now = now.Add(time.Second)
	c := tr.Expire()
	if !slices.Equal(c.Unfence, []string{"a"}) || !c.LocalChanged || len(c.Local) != 0 || c.SelfFound {
		t.Fatalf("expiry: %+v", c)
	}
	if len(tr.tombstones()) != 0 {
		t.Fatalf("tombstones left: %v", tr.tombstones())
	}
	checkBuild(t, tr)

	// The same through Reset alone.
	tr, now = newTombTracker(t, true)
	tr.Set("a", nil)
	*now = now.Add(TombstoneTTL)
	self, _, b := tombCluster()
	if st := tr.Reset([]*corev1.Node{self, b}); len(st.Fenced) != 0 {
		t.Fatalf("Reset after the TTL:\n%s", fmtState(st))
	}
}

// TestResetBuriesMissingNodes: a Node missing from a Reset's list (a
// relist that found it deleted) leaves a tombstone as a deletion does.
func TestResetBuriesMissingNodes(t *testing.T) {
	tr, _ := newTombTracker(t, true)
	st := tr.Reset(nil)
	if st.SelfFound || len(st.Local) != 2 || !slices.Equal(namesOf(st.Fenced), []string{"a", "b"}) || len(st.Peers) != 0 {
		t.Fatalf("after an empty Reset:\n%s", fmtState(st))
	}
	self, a, b := tombCluster()
	st = tr.Reset([]*corev1.Node{self, a, b})
	if !st.SelfFound || len(st.Peers) != 2 || len(st.Fenced) != 0 || len(tr.tombstones()) != 0 {
		t.Fatalf("all back:\n%s", fmtState(st))
	}
}

// TestTombstoneCap: at most MaxTombstones are kept; the oldest go first,
// released in the Change of the deletion that overflowed.
func TestTombstoneCap(t *testing.T) {
	const extra = 5
	now := t0
	tr := NewTracker(selfName, pubKey(0xee), 51820, true)
	tr.clock = func() time.Time { return now }
	var nodes []*corev1.Node
	for i := range MaxTombstones + extra {
		nodes = append(nodes, mkNode(fmt.Sprintf("n%04d", i), created(i), withPodCIDR(fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256)),
			withIP(fmt.Sprintf("192.168.%d.%d", i/250, 1+i%250))))
	}
	tr.Reset(nodes)
	for i, n := range nodes {
		now = now.Add(time.Second)
		c := tr.Set(n.Name, nil)
		if i < MaxTombstones {
			if len(c.Unfence) != 0 {
				t.Fatalf("deletion %d released %v under the cap", i, c.Unfence)
			}
			continue
		}
		if oldest := nodes[i-MaxTombstones].Name; !slices.Equal(c.Unfence, []string{oldest}) {
			t.Fatalf("deletion %d released %v, want the oldest, %s", i, c.Unfence, oldest)
		}
	}
	if n := len(tr.tombstones()); n != MaxTombstones {
		t.Fatalf("%d tombstones, want %d", n, MaxTombstones)
	}
	st := tr.State()
	if len(st.Fenced) != MaxTombstones || st.Fenced[0].Name != nodes[extra].Name {
		t.Fatalf("%d fenced, first %s; want %d from %s", len(st.Fenced), st.Fenced[0].Name, MaxTombstones, nodes[extra].Name)
	}
	// A Reset that finds them all gone at once keeps the cap too.
	tr = NewTracker(selfName, pubKey(0xee), 51820, true)
	tr.Reset(nodes)
	if st := tr.Reset(nil); len(st.Fenced) != MaxTombstones || len(tr.tombstones()) != MaxTombstones {
		t.Fatalf("Reset: %d fenced, %d tombstones", len(st.Fenced), len(tr.tombstones()))
	}
}

// TestFileSourceTombstones: with the nodes file, a node dropped from the
// file is a deleted Node: strict mode fences it until its tombstone
// expires, which the poll notices without a change to the file.
func TestFileSourceTombstones(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodes.yaml")
	core, logs := observer.New(zapcore.DebugLevel)
	writeFile(t, path, fileV2)
	r := startFileSource(t, &FileSource{Path: path, Self: "me", DefaultPort: 51820, Strict: true, Interval: fsInterval,
		Log: zap.New(core), tombstoneTTL: 500 * time.Millisecond})
	r.expectUpdate("start", stateV2)
	writeFile(t, path, fileV1)
	fenced := stateV1
	fenced.Fenced = []proxy.Peer{{Name: "peer-2", PodCIDRs: pfx("10.244.2.0/24")}}
	r.expectUpdate("peer-2 dropped from the file", fenced)
	r.expectUpdate("peer-2's tombstone expired", stateV1)
	if logs.FilterMessage("tombstones of removed nodes expired").Len() != 1 {
		t.Errorf("expiry not logged: %v", logs.All())
	}
}

// TestKubeSourceTombstones: through the API server's events, a deleted
// Node keeps its pod CIDRs covered (this node's own local, a peer's
// fenced with --strict), its return restores it, and the periodic rebuild
// agrees with what the events led to (no "differs" warning).
func TestKubeSourceTombstones(t *testing.T) {
	self := kubeNode(selfName, created(0), withIP("192.168.77.1"), withPodCIDR("10.244.0.0/24"))
	a := kubeNode("peer-a", created(1), withIP("192.168.77.2"), withPodCIDR("10.244.1.0/24"), withKey(testKey(1)))
	b := kubeNode("peer-b", created(2), withIP("192.168.77.3"), withPodCIDR("10.244.2.0/24"), withKey(testKey(2)))
	r := newKube(t, self.DeepCopy(), a.DeepCopy(), b.DeepCopy())
	r.src.Strict = true
	r.src.Rebuild = 20 * time.Millisecond
	r.start()
	pA := proxy.Peer{Name: "peer-a", PublicKey: pubKey(1), Endpoint: ap("192.168.77.2:51820"), PodCIDRs: pfx("10.244.1.0/24")}
	pB := proxy.Peer{Name: "peer-b", PublicKey: pubKey(2), Endpoint: ap("192.168.77.3:51820"), PodCIDRs: pfx("10.244.2.0/24")}
	local := pfx("10.244.0.0/24")
	r.expectUpdate("start", State{SelfFound: true, Local: local, Peers: []proxy.Peer{pA, pB}})
	r.waitAnnotations("publish", testKey(0xee), "192.168.77.1:51820")

	r.del(selfName)
	r.expectUpdate("own Node deleted", State{Local: local, Peers: []proxy.Peer{pA, pB}})
	r.del("peer-a")
	r.expectUpdate("peer-a deleted", State{Local: local, Peers: []proxy.Peer{pB},
		Fenced: []proxy.Peer{{Name: "peer-a", PodCIDRs: pA.PodCIDRs}}})
	r.expectNone("rebuilds while the Nodes are gone")
	if n := r.logs.FilterMessage("the state the Node events led to differs from a full rebuild; replacing it").Len(); n != 0 {
		t.Errorf("%d rebuilds disagreed with the events", n)
	}
	if r.logs.FilterMessage("this node's Node object is missing; keeping the pod CIDRs it last held until it is back or its tombstone expires").Len() == 0 {
		t.Errorf("missing own Node not logged: %v", r.logs.All())
	}

	r.add(self.DeepCopy())
	r.expectUpdate("own Node back", State{SelfFound: true, Local: local, Peers: []proxy.Peer{pB},
		Fenced: []proxy.Peer{{Name: "peer-a", PodCIDRs: pA.PodCIDRs}}})
	r.add(a.DeepCopy())
	r.expectUpdate("peer-a back", State{SelfFound: true, Local: local, Peers: []proxy.Peer{pA, pB}})
	r.waitAnnotations("republish", testKey(0xee), "192.168.77.1:51820")
	r.expectNone("settled")
}

// TestKubeSourceTombstoneExpiry: the periodic rebuild expires tombstones
// as a Change of its own.
func TestKubeSourceTombstoneExpiry(t *testing.T) {
	self := kubeNode(selfName, created(0), withIP("192.168.77.1"), withPodCIDR("10.244.0.0/24"))
	a := kubeNode("peer-a", created(1), withIP("192.168.77.2"), withPodCIDR("10.244.1.0/24"), withKey(testKey(1)))
	r := newKube(t, self, a)
	r.src.Strict = true
	r.src.Rebuild = 20 * time.Millisecond
	r.src.tombstoneTTL = 500 * time.Millisecond
	r.start()
	pA := proxy.Peer{Name: "peer-a", PublicKey: pubKey(1), Endpoint: ap("192.168.77.2:51820"), PodCIDRs: pfx("10.244.1.0/24")}
	local := pfx("10.244.0.0/24")
	r.expectUpdate("start", State{SelfFound: true, Local: local, Peers: []proxy.Peer{pA}})
	r.del("peer-a")
	r.expectUpdate("peer-a deleted", State{SelfFound: true, Local: local, Fenced: []proxy.Peer{{Name: "peer-a", PodCIDRs: pA.PodCIDRs}}})
	r.expectUpdate("peer-a's tombstone expired", State{SelfFound: true, Local: local})
	if r.logs.FilterMessage("tombstones of deleted Nodes expired").Len() != 1 {
		t.Errorf("expiry not logged: %v", r.logs.All())
	}
	if n := r.logs.FilterMessage("the state the Node events led to differs from a full rebuild; replacing it").Len(); n != 0 {
		t.Errorf("%d rebuilds disagreed with the events", n)
	}
}
