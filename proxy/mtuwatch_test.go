package proxy

import (
	"errors"
	"net/netip"
	"testing"

	"go.uber.org/zap"
)

type fakeMTU struct {
	mtu  int
	sets int
}

func (f *fakeMTU) MTU() (int, error) { return f.mtu, nil }
func (f *fakeMTU) SetMTU(m int) error {
	f.mtu = m
	f.sets++
	return nil
}

func TestMTUWatcherFollowsTheUnderlay(t *testing.T) {
	dev := &fakeMTU{mtu: 1420}
	underlay := 1500
	peers := []Peer{peerB()}
	w := &MTUWatcher{
		Device: dev, Peers: func() []Peer { return peers }, Log: zap.NewNop(),
		Underlay: func(eps []netip.Addr) (int, error) {
			if len(eps) != len(peers) {
				t.Fatalf("endpoints %v", eps)
			}
			return underlay, nil
		},
	}
	// IPv4 endpoints, IPv4 pods: 1500 - 60.
	if got, err := w.Check(); err != nil || got != 1440 || dev.sets != 1 {
		t.Fatalf("got %d sets %d err %v", got, dev.sets, err)
	}
	if got, _ := w.Check(); got != 1440 || dev.sets != 1 {
		t.Fatalf("unchanged underlay rewrote the MTU: %d sets %d", got, dev.sets)
	}
	underlay = 1400 // the underlay shrank
	if got, _ := w.Check(); got != 1340 || dev.sets != 2 {
		t.Fatalf("after shrink: %d sets %d", got, dev.sets)
	}
	// An IPv6 endpoint takes the larger overhead; IPv6 pods keep 1280.
	peers = []Peer{{Name: "v6", PublicKey: key(9), Endpoint: netip.MustParseAddrPort("[fd00:77::12]:51820"),
		PodCIDRs: []netip.Prefix{pfx("fd00:10:244:2::/64")}}}
	underlay = 1300
	if got, _ := w.Check(); got != MinMTU6 {
		t.Fatalf("IPv6: %d, want %d", got, MinMTU6)
	}
	// No endpoints yet: the start-up value stands.
	peers = nil
	if got, _ := w.Check(); got != MinMTU6 || dev.sets != 3 {
		t.Fatalf("no peers: %d sets %d", got, dev.sets)
	}
	w.Underlay = func([]netip.Addr) (int, error) { return 0, errors.New("no route") }
	peers = []Peer{peerB()}
	if _, err := w.Check(); err == nil {
		t.Fatal("underlay error not returned")
	}
}
