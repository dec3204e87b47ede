package controller

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/crosswire/crosswire/proxy"
)

// TestParseCacheMatchesFreshBuild mutates a cluster at random, good and bad
// Nodes alike, and checks after every step that Build with the cache
// returns exactly what Build without it does: a stale cache entry would
// keep a peer's old CIDRs or key, or a rejection that no longer holds.
func TestParseCacheMatchesFreshBuild(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	cidrs := []string{"10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24", "10.1.0.0/16", "not-a-cidr", "fd00::/64", ""}
	keys := []string{testKey(1), testKey(2), testKey(3), "bad key", ""}
	ips := []string{"192.168.0.1", "192.168.0.2", "10.1.0.5", "nope"}

	version := 0
	random := func(name string, uid types.UID) *corev1.Node {
		version++
		opts := []nodeOpt{created(rng.IntN(3)), withPodCIDR(cidrs[rng.IntN(len(cidrs))]),
			withKey(keys[rng.IntN(len(keys))]), withIP(ips[rng.IntN(len(ips))])}
		if rng.IntN(4) == 0 {
			opts = append(opts, withOverride(fmt.Sprintf("%s:%d", ips[rng.IntN(len(ips))], 51820+rng.IntN(2))))
		}
		n := mkNode(name, opts...)
		n.UID, n.ResourceVersion = uid, fmt.Sprint(version)
		return n
	}
	nodes := map[string]*corev1.Node{}
	cache := NewParseCache()
	seen := newSeniority()
	for step := range 300 {
		name := fmt.Sprintf("node-%d", rng.IntN(8))
		switch old, ok := nodes[name]; {
		case ok && rng.IntN(4) == 0:
			delete(nodes, name)
		case ok:
			nodes[name] = random(name, old.UID) // an update: same UID, new version
		default:
			nodes[name] = random(name, types.UID(fmt.Sprintf("uid-%d", step)))
		}
		var list []*corev1.Node
		for _, n := range nodes {
			list = append(list, n)
		}
		seen.sync(list)
		in := Input{Self: "node-0", SelfKey: pubKey(9), DefaultPort: 51820, Nodes: list, Seen: seen.seen}
		want := Build(in)
		in.Cache = cache
		got := Build(in)
		if !reflect.DeepEqual(normState(got), normState(want)) {
			t.Fatalf("step %d: cached Build\n got %+v\nwant %+v", step, got, want)
		}
		if !got.Equal(want) || (len(want.Peers) > 0 && got.Equal(State{})) {
			t.Fatalf("step %d: Equal disagrees with DeepEqual", step)
		}
		if len(cache.entries) != len(nodes) {
			t.Fatalf("step %d: cache holds %d entries for %d Nodes", step, len(cache.entries), len(nodes))
		}
	}
}

func TestStateEqual(t *testing.T) {
	base := State{SelfFound: true, Local: pfx("10.0.0.0/24"),
		Peers:    []proxy.Peer{{Name: "a", PublicKey: pubKey(1), PodCIDRs: pfx("10.1.0.0/24")}},
		Rejected: []Rejection{{"b", "why", GroupOther}}}
	clone := func() State {
		c := base
		c.Local = append([]netip.Prefix(nil), base.Local...)
		c.Peers = []proxy.Peer{base.Peers[0]}
		c.Peers[0].PodCIDRs = pfx("10.1.0.0/24")
		c.Rejected = append([]Rejection(nil), base.Rejected...)
		return c
	}
	if !base.Equal(clone()) {
		t.Fatal("a copy is not Equal")
	}
	for name, mutate := range map[string]func(*State){
		"self":     func(s *State) { s.SelfFound = false },
		"local":    func(s *State) { s.Local = pfx("10.0.1.0/24") },
		"key":      func(s *State) { s.Peers[0].PublicKey = pubKey(2) },
		"endpoint": func(s *State) { s.Peers[0].Endpoint = netip.MustParseAddrPort("192.0.2.1:1") },
		"cidrs":    func(s *State) { s.Peers[0].PodCIDRs = pfx("10.1.0.0/24", "10.2.0.0/24") },
		"peers":    func(s *State) { s.Peers = nil },
		"rejected": func(s *State) { s.Rejected[0].Reason = "other" },
	} {
		c := clone()
		mutate(&c)
		if base.Equal(c) || c.Equal(base) {
			t.Errorf("%s: a changed state is Equal", name)
		}
	}
}
