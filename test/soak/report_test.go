package soak

import (
	"reflect"
	"testing"
	"time"
)

func TestClippedGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	answers := []time.Time{at(0), at(0.1), at(5), at(5.1), at(5.2), at(9)}
	cases := []struct {
		from, to float64
		want     time.Duration
	}{
		{0, 9, 4900 * time.Millisecond},  // 0.1 -> 5
		{4, 5.2, time.Second},            // the silence since 0.1 counts from 4
		{5, 5.2, 100 * time.Millisecond}, // answers all the way
		{9.5, 10, 500 * time.Millisecond},
	}
	for _, c := range cases {
		if got := clippedGap(answers, at(c.from), at(c.to)); got != c.want {
			t.Errorf("[%v, %v]: %v, want %v", c.from, c.to, got, c.want)
		}
	}
}

func TestLeaksAreLaidAtTheFaultsOnTheirNodes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	flush, _ := KindByName("nft-flush")
	loss, _ := KindByName("underlay-loss30")
	etcd, _ := KindByName("etcd-restart")
	results := []Result{
		{Fault: Fault{Seq: 1, Kind: etcd}, Injected: at(0), Healed: at(20)},
		{Fault: Fault{Seq: 2, Kind: flush, Node: 3}, Injected: at(5), Healed: at(8)},
		{Fault: Fault{Seq: 3, Kind: loss, Node: 1}, Injected: at(4), Healed: at(12)},
	}
	leaks := []Leak{
		{At: at(7), Src: 3, Dst: 2},  // only the flush held node3 or node2
		{At: at(7), Src: 1, Dst: 3},  // both: shared
		{At: at(10), Src: 1, Dst: 2}, // only the loss held node1 then
		{At: at(15), Src: 2, Dst: 4}, // no node fault: the cluster-wide one
		{At: at(30), Src: 2, Dst: 4}, // nothing ran
	}
	stats, unattributed := Summarize(results, leaks)
	got := map[string][2]int{}
	for _, s := range stats {
		if s.Plaintext+s.Shared > 0 {
			got[s.Kind.Name] = [2]int{s.Plaintext, s.Shared}
		}
	}
	want := map[string][2]int{"nft-flush": {1, 1}, "underlay-loss30": {1, 1}, "etcd-restart": {1, 0}}
	if !reflect.DeepEqual(got, want) || unattributed != 1 {
		t.Errorf("got %v and %d unattributed, want %v and 1", got, unattributed, want)
	}
}
