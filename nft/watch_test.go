package nft

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Watch reports what another program does to crosswire's tables, and
// neither the Manager's own applies and updates nor changes to other
// tables.
func TestWatchReportsForeignChangesOnly(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	var calls atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Watch(ctx, func() { calls.Add(1) }) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return after its context ended")
		}
	})
	// Watch joins the group asynchronously: an apply it may miss is one
	// it must not report anyway, and what follows is checked after it.
	time.Sleep(100 * time.Millisecond)

	quiet := func(what string) {
		t.Helper()
		time.Sleep(300 * time.Millisecond)
		if n := calls.Swap(0); n != 0 {
			t.Errorf("%s: Watch reported %d foreign changes, want none", what, n)
		}
	}
	reported := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for calls.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reported", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		calls.Store(0)
	}

	st := testState()
	if err := m.Apply(st); err != nil {
		t.Fatal(err)
	}
	quiet("the Manager's Apply")
	if err := m.AddRemote(pfx("10.250.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveRemote(pfx("10.250.0.0/24")); err != nil {
		t.Fatal(err)
	}
	quiet("the Manager's incremental updates")
	ns.nft(t, "add table ip othertool")
	ns.nft(t, "add chain ip othertool c { type filter hook forward priority 0; }")
	ns.nft(t, "add table inet crosswire-other")
	quiet("another program's own tables")

	for _, tamper := range []string{
		"flush table inet crosswire",
		"delete table inet crosswire-guard",
		"delete element inet crosswire remote4 { 10.244.2.0/24 }",
		"flush chain inet crosswire-guard guard",
		"add rule inet crosswire forward counter",
		"delete table inet crosswire",
	} {
		if err := m.Apply(st); err != nil {
			t.Fatal(err)
		}
		quiet("the Manager's Apply before " + tamper)
		ns.nft(t, tamper)
		reported(tamper)
	}
	if err := m.Delete(); err != nil {
		t.Fatal(err)
	}
	quiet("the Manager's Delete")
}
