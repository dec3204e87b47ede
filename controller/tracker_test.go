package controller

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
// random series of Node adds, changes and deletions, after each of which
// the tracker's state must be what Build computes over all current Nodes
// (in the same order of seniority), and the Changes it returned, applied in
// order, must add up to that state.
func TestTrackerMatchesBuild(t *testing.T) {
	names := []string{"self", "a", "b", "c", "d", "e", "f", "g"}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		fence := seed%2 == 1
		tr := NewTracker("self", pubKey(9), 51820, fence)
		current := map[string]*corev1.Node{}
		seen := newSeniority() // the test's own record of who came first
		var applied State      // the Changes, applied in order
		for step := range 40 {
			name := names[rng.IntN(len(names))]
			var c Change
			if rng.IntN(5) == 0 {
				delete(current, name)
				seen.remove(name)
				c = tr.Set(name, nil)
			} else {
				n := randomNode(rng, name)
				current[name] = n
				seen.add(name)
				c = tr.Set(name, n)
			}
			var all []*corev1.Node
			for _, n := range current {
				all = append(all, n)
			}
			want := Build(Input{Self: "self", SelfKey: pubKey(9), DefaultPort: 51820, Nodes: all, Seen: seen.seen, Fence: fence})
			got := tr.State()
			if !stateEqual(got, want) {
				t.Fatalf("seed %d step %d (set %s): tracker\n%s\nBuild\n%s", seed, step, name, fmtState(got), fmtState(want))
			}
			applied = c.applyTo(applied)
			if !stateEqual(applied, want) {
				t.Fatalf("seed %d step %d (set %s): changes add up to\n%s\nwant\n%s", seed, step, name, fmtState(applied), fmtState(want))
			}
		}
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
