package proxy

import (
	"errors"
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

func TestSetRejectedAndPeerKeysInStatus(t *testing.T) {
	w := newWorld()
	e := newEngine(t, w)
	e.SetRejected([]Rejection{{Node: "x", Reason: "bad"}})
	e.Update(desired(peerB(), Peer{Name: "nokey"}))
	s := e.Status()
	if len(s.Rejected) != 1 || s.Rejected[0].Node != "x" {
		t.Fatalf("rejected = %+v", s.Rejected)
	}
	if len(s.Peers) != 2 || s.Peers[0].PublicKey != key(2) || !s.Peers[0].HasKey || s.Peers[1].HasKey || !s.Peers[1].PublicKey.IsZero() {
		t.Fatalf("peers = %+v", s.Peers)
	}
	s.Rejected[0].Node = "changed"
	if e.Status().Rejected[0].Node != "x" {
		t.Fatal("Status shares its Rejected slice")
	}
	e.SetRejected(nil)
	if len(e.Status().Rejected) != 0 {
		t.Fatal("rejections not cleared")
	}
}
