package proxy

import (
	"context"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
)

func keyless(p Peer) Peer { p.PublicKey = [32]byte{}; return p }

// TestStrictKeylessPeerIsRoutedIntoTunnel: in strict mode a known node's
// pod CIDRs are marked and routed (tunnel + blackhole) before it has a
// key; with no WireGuard peer for them, the tunnel drops the traffic. When
// the key arrives only the peer is added: the set and routes were right.
func TestStrictKeylessPeerIsRoutedIntoTunnel(t *testing.T) {
	w := newWorld()
	cfg := testCfg
	cfg.Strict = true
	e, err := New(cfg, Deps{Rules: fakeRules{w}, Tunnel: fakeTunnel{w}, Router: fakeRouter{w}})
	if err != nil {
		t.Fatal(err)
	}
	e.Update(desired(peerB(), keyless(peerC())))
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	both := []netip.Prefix{pfx("10.244.2.0/24"), pfx("10.244.3.0/24")}
	if !slices.Equal(w.remoteSet, both) || !slices.Equal(w.routes, both) {
		t.Fatalf("set %v routes %v, want %v", w.remoteSet, w.routes, both)
	}
	if len(w.peers) != 1 || w.peers[0].PublicKey != key(2) {
		t.Fatalf("tunnel peers %v, want only b", w.peers)
	}
	w.takeCalls()

	e.Update(desired(peerB(), peerC()))
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	want := []string{"nft.RemoveRemote[]", "wg.SetPeers[10.244.2.0/24 10.244.3.0/24]", "nft.AddRemote[]"}
	if got := w.takeCalls(); !slices.Equal(got, want) {
		t.Fatalf("key arrival: calls\n got %v\nwant %v", got, want)
	}

	// A full resync agrees: nothing to repair.
	if err := e.reconcile(true); err != nil {
		t.Fatal(err)
	}
	if s := e.Status(); len(s.LastRepairs) != 0 {
		t.Fatalf("resync repaired %v", s.LastRepairs)
	}
}

// TestRunLeavesNoGoroutines: Run returns when its context ends and takes
// every goroutine it started with it.
func TestRunLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := 0; i < 5; i++ {
		w := newWorld()
		cfg := testCfg
		cfg.ResyncInterval = 10 * time.Millisecond
		e, err := New(cfg, Deps{Rules: fakeRules{w}, Tunnel: fakeTunnel{w}, Router: fakeRouter{w}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		e.Update(desired(peerB()))
		time.Sleep(30 * time.Millisecond) // a few applies and resyncs
		w.mu.Lock()
		w.fail["route.Add"] = errString("injected") // and a retry timer pending
		w.mu.Unlock()
		e.Update(desired(peerB(), peerC()))
		time.Sleep(20 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after engine shutdown:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
