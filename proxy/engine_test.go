package proxy

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crosswire/crosswire/wgtun"
)

var testCfg = Config{Table: 202, RulePriority: 1200, Mark: 0x1000, Mask: 0x1000, TunnelIface: "cw0", ResyncInterval: time.Hour}

func key(b byte) wgtun.Key { var k wgtun.Key; k[0] = b; k[31] = 1; return k }

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func newEngine(t *testing.T, w *world) *Engine {
	t.Helper()
	e, err := New(testCfg, Deps{Rules: fakeRules{w}, Tunnel: fakeTunnel{w}, Router: fakeRouter{w}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func desired(peers ...Peer) Desired {
	return Desired{Local: []netip.Prefix{pfx("10.244.1.0/24")}, Peers: peers}
}

func peerB() Peer {
	return Peer{Name: "b", PublicKey: key(2), Endpoint: netip.MustParseAddrPort("192.168.77.12:51820"), PodCIDRs: []netip.Prefix{pfx("10.244.2.0/24")}}
}

func peerC() Peer {
	return Peer{Name: "c", PublicKey: key(3), Endpoint: netip.MustParseAddrPort("192.168.77.13:51820"), PodCIDRs: []netip.Prefix{pfx("10.244.3.0/24")}}
}

func TestNothingAppliedBeforeFirstUpdate(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	if err := e.reconcile(true); err != nil {
		t.Fatal(err)
	}
	if c := w.takeCalls(); len(c) != 0 {
		t.Fatalf("engine touched the datapath before knowing the desired state: %v", c)
	}
}

func TestFirstApplyOrdersPeerRouteThenTable(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	e.Update(desired(peerB()))
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	want := []string{"wg.SyncPeers[10.244.2.0/24]", "route.Add[10.244.2.0/24]", "nft.Apply[10.244.2.0/24]"}
	if got := w.takeCalls(); !slices.Equal(got, want) {
		t.Fatalf("calls\n got %v\nwant %v", got, want)
	}
	if !w.rule {
		t.Fatal("policy rule not installed")
	}
}

func TestIncrementalAddAndRemoveOrder(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	e.Update(desired(peerB()))
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	w.takeCalls()

	e.Update(desired(peerB(), peerC()))
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	want := []string{"nft.RemoveRemote[]", "wg.SetPeers[10.244.2.0/24 10.244.3.0/24]", "route.Add[10.244.3.0/24]", "nft.AddRemote[10.244.3.0/24]"}
	if got := w.takeCalls(); !slices.Equal(got, want) {
		t.Fatalf("add calls\n got %v\nwant %v", got, want)
	}

	e.Update(desired(peerC()))
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	want = []string{"nft.RemoveRemote[10.244.2.0/24]", "route.Del[10.244.2.0/24]", "wg.SetPeers[10.244.3.0/24]", "nft.AddRemote[]"}
	if got := w.takeCalls(); !slices.Equal(got, want) {
		t.Fatalf("remove calls\n got %v\nwant %v", got, want)
	}
	if !slices.Equal(w.remoteSet, []netip.Prefix{pfx("10.244.3.0/24")}) || !slices.Equal(w.routes, w.remoteSet) {
		t.Fatalf("state after remove: set %v routes %v", w.remoteSet, w.routes)
	}
}

func TestKeylessPeerIsNotRouted(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	c := peerC()
	c.PublicKey = wgtun.Key{}
	e.Update(desired(peerB(), c))
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.remoteSet, []netip.Prefix{pfx("10.244.2.0/24")}) || len(w.peers) != 1 {
		t.Fatalf("keyless peer leaked into datapath: set %v peers %d", w.remoteSet, len(w.peers))
	}
}

func TestResyncRepairsEachKindOfDrift(t *testing.T) {
	breakers := map[string]func(w *world){
		"table deleted": func(w *world) { w.table, w.remoteSet = false, nil },
		"rule deleted":  func(w *world) { w.rule = false },
		"route deleted": func(w *world) { w.routes = nil },
		"peer removed":  func(w *world) { w.peers = nil },
		"extra route":   func(w *world) { w.routes = sortPrefixes(append(w.routes, pfx("10.9.0.0/16"))) },
		"element gone":  func(w *world) { w.remoteSet = nil },
	}
	for name, brk := range breakers {
		t.Run(name, func(t *testing.T) {
			w := newWorld()
			e := newEngine(t, w)
			e.Update(desired(peerB(), peerC()))
			if err := e.reconcile(false); err != nil {
				t.Fatal(err)
			}
			want := struct {
				set, routes []netip.Prefix
				peers       int
			}{slices.Clone(w.remoteSet), slices.Clone(w.routes), len(w.peers)}
			brk(w)
			if err := e.reconcile(true); err != nil {
				t.Fatal(err)
			}
			if !w.table || !w.rule || !slices.Equal(w.remoteSet, want.set) || !slices.Equal(w.routes, want.routes) || len(w.peers) != want.peers {
				t.Fatalf("not repaired: table %v rule %v set %v routes %v peers %d", w.table, w.rule, w.remoteSet, w.routes, len(w.peers))
			}
			if s := e.Status(); s.DriftRepairs != 1 || len(s.LastRepairs) == 0 {
				t.Fatalf("repair not reported: %+v", s)
			}
		})
	}
}

func TestResyncWithoutDriftChangesNothing(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	e.Update(desired(peerB()))
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	w.takeCalls()
	if err := e.reconcile(true); err != nil {
		t.Fatal(err)
	}
	for _, c := range w.takeCalls() {
		if c != "wg.SyncPeers[10.244.2.0/24]" { // a diffing no-op in the real device
			t.Fatalf("resync without drift wrote %q", c)
		}
	}
	if s := e.Status(); s.DriftRepairs != 0 {
		t.Fatalf("drift reported without drift: %+v", s.LastRepairs)
	}
}

func TestFailureFallsBackToFullApply(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	e.Update(desired(peerB()))
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	w.fail["route.Add"] = errors.New("boom")
	e.Update(desired(peerB(), peerC()))
	if err := e.reconcile(false); err == nil {
		t.Fatal("error not returned")
	}
	if slices.Contains(w.remoteSet, pfx("10.244.3.0/24")) {
		t.Fatal("prefix marked although its route failed")
	}
	delete(w.fail, "route.Add")
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(w.remoteSet, pfx("10.244.3.0/24")) || !slices.Contains(w.routes, pfx("10.244.3.0/24")) {
		t.Fatalf("retry did not converge: set %v routes %v", w.remoteSet, w.routes)
	}
}

func TestRunAppliesUpdatesAndStops(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	e.Update(desired(peerB()))
	deadline := time.Now().Add(5 * time.Second)
	for !e.Status().Applied {
		if time.Now().After(deadline) {
			t.Fatal("update not applied")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if w.table == false {
		t.Fatal("stopping removed the datapath")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []func(c *Config){
		func(c *Config) { c.Mark = 0 },
		func(c *Config) { c.Mark = 0x3000 },
		func(c *Config) { c.Table = 254 },
		func(c *Config) { c.RulePriority = 32766 },
		func(c *Config) { c.TunnelIface = "" },
		func(c *Config) { c.ResyncInterval = 0 },
	}
	for i, mut := range bad {
		c := testCfg
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("case %d: %+v accepted", i, c)
		}
	}
	if err := testCfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSysctlFailureDoesNotHoldBackTheDatapath(t *testing.T) {
	w := newWorld()
	e, err := New(testCfg, Deps{Rules: fakeRules{w}, Tunnel: fakeTunnel{w}, Router: fakeRouter{w},
		Sysctls: func() ([]string, error) { return nil, errors.New("read-only file system") }})
	if err != nil {
		t.Fatal(err)
	}
	e.Update(desired(peerB()))
	if err := e.reconcile(false); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("sysctl error not reported: %v", err)
	}
	if !w.table || !w.rule || len(w.routes) != 1 || len(w.peers) != 1 {
		t.Fatalf("datapath held back by a sysctl: table %v rule %v routes %v peers %d", w.table, w.rule, w.routes, len(w.peers))
	}
}
