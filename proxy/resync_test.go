package proxy

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Resync repairs at once what the resync tick (an hour here) would
// repair, and a storm of requests costs one reconcile per minRepairGap.
func TestResyncRepairsNowAndIsSpaced(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	e.Update(desired(peerB()))
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("first apply", func() bool { return e.Status().Applied })
	tableBack := func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.table
	}
	drifted := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		n := 0
		for _, c := range w.calls {
			if strings.HasPrefix(c, "nft.Apply") {
				n++
			}
		}
		w.calls = nil
		return n
	}
	drifted()

	// Behind the engine's back: the table is gone.
	w.mu.Lock()
	w.table, w.local, w.remoteSet = false, nil, nil
	w.mu.Unlock()
	start := time.Now()
	e.Resync()
	waitFor("repair after Resync", tableBack)
	t.Logf("repaired %v after Resync", time.Since(start))
	if n := drifted(); n != 1 {
		t.Fatalf("%d applies for one Resync, want 1", n)
	}

	// A program that keeps deleting the table, and a Resync for each
	// time: within the gap nothing runs, then one reconcile for them all.
	for range 20 {
		w.mu.Lock()
		w.table, w.local, w.remoteSet = false, nil, nil
		w.mu.Unlock()
		e.Resync()
		time.Sleep(10 * time.Millisecond)
	}
	waitFor("repair after the storm", tableBack)
	if n := drifted(); n != 1 {
		t.Fatalf("%d applies for a storm of Resync requests within %v, want 1", n, minRepairGap)
	}
}
