package soak

import (
	"reflect"
	"testing"
	"time"
)

func TestPlanIsSeededAndCoversEveryKind(t *testing.T) {
	a, b := Plan(42, Kinds, 4, 5), Plan(42, Kinds, 4, 5)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two schedules")
	}
	if reflect.DeepEqual(a, Plan(43, Kinds, 4, 5)) {
		t.Fatal("two seeds gave the same schedule")
	}
	if len(a) != 5*len(Kinds) {
		t.Fatalf("%d faults in 5 rounds of %d kinds", len(a), len(Kinds))
	}
	count := map[string]int{}
	for i, f := range a {
		count[f.Kind.Name]++
		if f.Seq != i+1 {
			t.Errorf("fault %d has Seq %d", i, f.Seq)
		}
		if f.Gap < 300*time.Millisecond || f.Gap > 3*time.Second {
			t.Errorf("fault %d: gap %v", f.Seq, f.Gap)
		}
		if f.Hold < f.Kind.Hold[0] || f.Hold > f.Kind.Hold[1]+50*time.Millisecond {
			t.Errorf("fault %d %s: hold %v outside %v", f.Seq, f.Kind.Name, f.Hold, f.Kind.Hold)
		}
		switch f.Kind.Target {
		case targetNone:
			if f.Node != 0 || f.Peer != 0 {
				t.Errorf("cluster-wide fault %d targets node%d/node%d", f.Seq, f.Node, f.Peer)
			}
		case targetNode:
			if f.Node < 1 || f.Node > 4 || f.Peer != 0 || f.Kind.NoControl && f.Node == 1 {
				t.Errorf("fault %d %s targets node%d/node%d", f.Seq, f.Kind.Name, f.Node, f.Peer)
			}
		case targetPair:
			if f.Node < 1 || f.Node > 4 || f.Peer < 1 || f.Peer > 4 || f.Node == f.Peer {
				t.Errorf("pair fault %d targets node%d/node%d", f.Seq, f.Node, f.Peer)
			}
		case targetSpare:
			if f.Node != 5 {
				t.Errorf("join fault %d targets node%d", f.Seq, f.Node)
			}
		}
	}
	for _, k := range Kinds {
		if count[k.Name] != 5 {
			t.Errorf("%s: %d times in 5 rounds", k.Name, count[k.Name])
		}
	}
}

func TestConflicts(t *testing.T) {
	kind := func(name string) Kind {
		k, ok := KindByName(name)
		if !ok {
			t.Fatalf("no kind %s", name)
		}
		return k
	}
	cases := []struct {
		a, b Fault
		want bool
	}{
		{Fault{Kind: kind("nft-flush"), Node: 2}, Fault{Kind: kind("agent-sigkill"), Node: 2}, true},
		{Fault{Kind: kind("nft-flush"), Node: 2}, Fault{Kind: kind("agent-sigkill"), Node: 3}, false},
		{Fault{Kind: kind("wg-peer-remove"), Node: 1, Peer: 3}, Fault{Kind: kind("underlay-flap"), Node: 3}, true},
		{Fault{Kind: kind("apiserver-stop")}, Fault{Kind: kind("nft-flush"), Node: 2}, false},
		{Fault{Kind: kind("apiserver-stop")}, Fault{Kind: kind("rekey"), Node: 2}, true},
		{Fault{Kind: kind("etcd-restart")}, Fault{Kind: kind("apiserver-pause")}, true},
		{Fault{Kind: kind("node-join"), Node: 5}, Fault{Kind: kind("annotation-tamper"), Node: 2}, false},
	}
	for _, c := range cases {
		if got := c.a.conflicts(c.b); got != c.want || c.b.conflicts(c.a) != c.want {
			t.Errorf("%s vs %s: conflicts %v, want %v (both ways)", describe(c.a), describe(c.b), got, c.want)
		}
	}
}
