package nft

import (
	"net/netip"
	"testing"
)

func TestSetSizes(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	if got, err := m.SetSizes(); err != nil || len(got) != 0 {
		t.Fatalf("SetSizes without table = %v, %v; want empty", got, err)
	}
	st := State{
		Local: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:10:244:1::/64")},
		Remote: []netip.Prefix{
			netip.MustParsePrefix("10.244.2.0/24"), netip.MustParsePrefix("10.244.3.0/24"),
			netip.MustParsePrefix("10.244.9.0/24"), netip.MustParsePrefix("fd00:10:244:2::/64"),
		},
	}
	if err := m.Apply(st); err != nil {
		t.Fatal(err)
	}
	got, err := m.SetSizes()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{SetLocal4: 1, SetLocal6: 1, SetRemote4: 3, SetRemote6: 1}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("SetSizes()[%s] = %d, want %d (all: %v)", k, got[k], w, got)
		}
	}
	if err := m.RemoveRemote([]netip.Prefix{netip.MustParsePrefix("10.244.3.0/24")}); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.SetSizes(); got[SetRemote4] != 2 {
		t.Errorf("after removal remote4 = %d, want 2", got[SetRemote4])
	}
}
