package proxy

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/crosswire/crosswire/wgtun"
)

// TestChangeMatchesUpdate: random series of peer changes, fed to one
// engine as Changes and to another as whole states, leave the same
// datapath (set elements, routes, tunnel peers, table), and the engine fed
// Changes never marks a prefix that has no route at any moment. In strict
// mode too, where keyless peers are marked.
func TestChangeMatchesUpdate(t *testing.T) {
	for _, strict := range []bool{false, true} {
		for seed := range uint64(60) {
			t.Run(fmt.Sprintf("strict=%v/seed=%d", strict, seed), func(t *testing.T) {
				testChangeMatchesUpdate(t, strict, seed)
			})
		}
	}
}

func testChangeMatchesUpdate(t *testing.T, strict bool, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	cfg := testCfg
	cfg.Strict = strict
	mk := func(w *world) *Engine {
		e, err := New(cfg, Deps{Rules: fakeRules{w}, Tunnel: fakeTunnel{w}, Router: fakeRouter{w}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	wc, ww := newWorld(), newWorld()
	ec, ew := mk(wc), mk(ww)

	// Prefixes move between peers, as when a Node leaves and another takes
	// its CIDR, but never belong to two peers at once.
	prefixes := make([]netip.Prefix, 10)
	for i := range prefixes {
		prefixes[i] = netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", 10+i))
	}
	names := []string{"a", "b", "c", "d", "e"}
	cur := map[string]Peer{}
	local := []netip.Prefix{pfx("10.244.1.0/24")}
	whole := func() Desired {
		d := Desired{Local: local}
		for _, p := range cur {
			d.Peers = append(d.Peers, p)
		}
		slices.SortFunc(d.Peers, func(a, b Peer) int { return cmp.Compare(a.Name, b.Name) })
		return d
	}
	ec.Update(whole())
	ew.Update(whole())
	for step := range 40 {
		var c Delta
		for range 1 + rng.IntN(2) {
			name := names[rng.IntN(len(names))]
			if rng.IntN(4) == 0 {
				delete(cur, name)
				c.Upsert = slices.DeleteFunc(c.Upsert, func(q Peer) bool { return q.Name == name })
				c.Remove = append(c.Remove, name)
				continue
			}
			p := Peer{Name: name, Endpoint: netip.MustParseAddrPort(fmt.Sprintf("192.168.77.%d:51820", 1+rng.IntN(3)))}
			if rng.IntN(4) != 0 {
				p.PublicKey = key(byte(1 + rng.IntN(8)))
			}
			delete(cur, name)
			for _, i := range rng.Perm(len(prefixes))[:rng.IntN(3)] {
				if !owned(cur, prefixes[i]) {
					p.PodCIDRs = append(p.PodCIDRs, prefixes[i])
				}
			}
			slices.SortFunc(p.PodCIDRs, netip.Prefix.Compare)
			// A key held by another peer would be rejected upstream.
			if !p.PublicKey.IsZero() && keyHeld(cur, p.PublicKey) {
				p.PublicKey = wgtun.Key{}
			}
			cur[name] = p
			// Peers are whole in a Change: drop an earlier entry of this one.
			c.Remove = slices.DeleteFunc(c.Remove, func(n string) bool { return n == name })
			c.Upsert = slices.DeleteFunc(c.Upsert, func(q Peer) bool { return q.Name == name })
			c.Upsert = append(c.Upsert, p)
		}
		if rng.IntN(10) == 0 {
			local = []netip.Prefix{pfx(fmt.Sprintf("10.244.%d.0/25", rng.IntN(2)))}
			c.LocalChanged, c.Local = true, local
		}
		ec.Change(c)
		ew.Update(whole())
		full := rng.IntN(8) == 0 // a resync now and then, on both
		if err := ec.reconcile(full); err != nil {
			t.Fatal(err)
		}
		if err := ew.reconcile(full); err != nil {
			t.Fatal(err)
		}
		if got, want := worldState(wc), worldState(ww); got != want {
			t.Fatalf("step %d: after Changes\n%s\nafter whole states\n%s", step, got, want)
		}
		if len(wc.violations) > 0 {
			t.Fatalf("step %d: %v", step, wc.violations)
		}
	}
	if calls := strings.Join(wc.takeCalls(), " "); strings.Contains(calls, "wg.SetPeers") {
		t.Errorf("Changes fell back to whole peer lists: %s", calls)
	}
}

func owned(peers map[string]Peer, p netip.Prefix) bool {
	for _, q := range peers {
		if slices.Contains(q.PodCIDRs, p) {
			return true
		}
	}
	return false
}

func keyHeld(peers map[string]Peer, k wgtun.Key) bool {
	for _, q := range peers {
		if q.PublicKey == k {
			return true
		}
	}
	return false
}

// worldState describes what the fake kernel holds, in a stable order.
func worldState(w *world) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	peers := make([]string, 0, len(w.peers))
	for _, p := range w.peers {
		peers = append(peers, fmt.Sprint(p.PublicKey, p.Endpoint, sortPrefixes(slices.Clone(p.AllowedIPs))))
	}
	slices.Sort(peers)
	return fmt.Sprintf("table=%v local=%v marked=%v routes=%v\npeers=%v", w.table, w.local, w.remoteSet, w.routes, peers)
}
