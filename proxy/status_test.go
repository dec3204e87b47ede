package proxy

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// OnApply sees every apply with its effective kind: the first apply and
// the retry after an error are full even when an incremental one was
// asked for.
func TestOnApplyReportsKindErrorsAndDrift(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	var got []ApplyResult
	e.OnApply(func(r ApplyResult) { got = append(got, r) })

	e.Update(desired(peerB()))
	if err := e.reconcile(false); err != nil { // first: full (adoption, not drift)
		t.Fatal(err)
	}
	e.Update(desired(peerB(), peerC()))
	if err := e.reconcile(false); err != nil { // incremental
		t.Fatal(err)
	}
	w.fail["route.Add"] = errors.New("boom")
	e.Update(desired(peerB()))
	e.Update(desired(peerB(), peerC()))
	w.routes = nil
	if err := e.reconcile(true); err == nil { // full, fails
		t.Fatal("no error")
	}
	delete(w.fail, "route.Add")
	if err := e.reconcile(false); err != nil { // retry: full, repairs the routes
		t.Fatal(err)
	}
	want := []struct{ full, err, drift bool }{{true, false, false}, {false, false, false}, {true, true, true}, {true, false, true}}
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Full != w.full || (got[i].Err != nil) != w.err {
			t.Errorf("apply %d: %+v, want full %t err %t", i, got[i], w.full, w.err)
		}
		if i != 2 && got[i].Drift != w.drift {
			t.Errorf("apply %d: drift %t, want %t", i, got[i].Drift, w.drift)
		}
	}
}

func TestPeerKeysInStatus(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	d := desired(peerB(), Peer{Name: "nokey"})
	e.Update(d)
	s := e.Status()
	if len(s.Peers) != 2 || s.Peers[0].PublicKey != key(2) || s.Peers[1].Name != "nokey" || !s.Peers[1].PublicKey.IsZero() {
		t.Fatalf("peers = %+v", s.Peers)
	}
	d.Peers[0].PodCIDRs[0] = netip.Prefix{}
	if !e.Status().Peers[0].PodCIDRs[0].IsValid() {
		t.Fatal("Status shares its pod CIDRs with the desired state")
	}
}

// ApplyStatus is Status without the peers.
func TestApplyStatusLeavesPeersOut(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	e.Update(desired(peerB(), peerC()))
	if err := e.reconcile(false); err != nil {
		t.Fatal(err)
	}
	full, short := e.Status(), e.ApplyStatus()
	if len(full.Peers) != 2 || short.Peers != nil {
		t.Fatalf("Status has %d peers, ApplyStatus %d; want 2 and none", len(full.Peers), len(short.Peers))
	}
	full.Peers = nil
	if !reflect.DeepEqual(full, short) {
		t.Fatalf("ApplyStatus %+v, Status without peers %+v", short, full)
	}
	if !short.Known || !short.Applied || short.Applies != 1 {
		t.Fatalf("ApplyStatus %+v: want known, applied once", short)
	}
}
