package proxy

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/wgtun"
)

// nop is a kernel that accepts everything at no cost, so that the
// benchmark measures the engine alone.
type nop struct{}

func (nop) Apply(nft.State) error                                 { return nil }
func (nop) AddRemote([]netip.Prefix) error                        { return nil }
func (nop) RemoveRemote([]netip.Prefix) error                     { return nil }
func (nop) Drift(nft.State) ([]string, error)                     { return nil, nil }
func (nop) Delete() error                                         { return nil }
func (nop) SetPeers([]wgtun.Peer) error                           { return nil }
func (nop) SyncPeers([]wgtun.Peer) (string, error)                { return "", nil }
func (nop) UpdatePeers([]wgtun.Peer, []wgtun.Key) error           { return nil }
func (nop) Stats() ([]wgtun.PeerStats, error)                     { return nil, nil }
func (nop) EnsureRule() (bool, error)                             { return false, nil }
func (nop) Routes() (complete, present []netip.Prefix, err error) { return nil, nil, nil }
func (nop) AddRoutes([]netip.Prefix) error                        { return nil }
func (nop) DelRoutes([]netip.Prefix) error                        { return nil }
func (nop) DeleteAll() error                                      { return nil }

// BenchmarkChange is what one Node event costs the engine at each cluster
// size: a peer's key changes, Change records it and the apply that
// follows computes what to write. Time and allocations per event must not
// grow with the cluster (compare the sizes).
func BenchmarkChange(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e, err := New(testCfg, Deps{Rules: nop{}, Tunnel: nop{}, Router: nop{}})
			if err != nil {
				b.Fatal(err)
			}
			d := Desired{Local: []netip.Prefix{pfx("10.0.0.0/24")}}
			for i := range n {
				d.Peers = append(d.Peers, Peer{Name: fmt.Sprintf("node-%05d", i), PublicKey: key(byte(i)),
					Endpoint: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}), 51820),
					PodCIDRs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1 + byte(i>>8), byte(i), 0}), 24)}})
			}
			e.Update(d)
			if err := e.reconcile(false); err != nil {
				b.Fatal(err)
			}
			p := d.Peers[n/2]
			versions := [2]Peer{p, p}
			versions[1].PublicKey = key(0xfe)
			b.ReportAllocs()
			i := 1
			for b.Loop() {
				e.Change(Delta{Upsert: []Peer{versions[i%2]}})
				if err := e.reconcile(false); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
