package wgtun

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// benchPeers returns n peers as a cluster has them: one /24 pod CIDR each
// under 10.128.0.0/9, endpoint node IP 172.16.x.y:51820.
func benchPeers(b testing.TB, n int) []Peer {
	b.Helper()
	peers := make([]Peer, n)
	for i := range peers {
		k, err := GeneratePrivateKey()
		if err != nil {
			b.Fatal(err)
		}
		peers[i] = Peer{
			PublicKey:  k.PublicKey(),
			Endpoint:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), 51820),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + i/128), byte(2 * (i % 128)), 0}), 24)},
		}
	}
	return peers
}

// memInUse is the Go heap and goroutine stacks in use after a full GC.
func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// BenchmarkOnDemandPeers5000 gives a device 5000 desired peers, with and
// without OnDemand, and reports what they cost the process (heap and stacks
// in use after GC, goroutines) before any traffic; the timed loop is one
// Node event, as in BenchmarkSetPeersEvent.
//
//	go test -run '^$' -bench OnDemandPeers5000 -benchtime 20x ./wgtun/
func BenchmarkOnDemandPeers5000(b *testing.B) {
	needRootForTUN(b)
	const n = 5000
	peers := benchPeers(b, n)
	for _, onDemand := range []bool{false, true} {
		b.Run(map[bool]string{false: "all", true: "ondemand"}[onDemand], func(b *testing.B) {
			memBefore, grBefore := memInUse(), runtime.NumGoroutine()
			d := benchDeviceWith(b, func(c *Config) { c.OnDemand = onDemand })
			memDevice, grDevice := memInUse(), runtime.NumGoroutine()
			if err := d.SetPeers(peers); err != nil {
				b.Fatal(err)
			}
			memPeers, grPeers := memInUse(), runtime.NumGoroutine()
			desired, configured := d.PeerCounts()
			if desired != n {
				b.Fatalf("desired %d, want %d", desired, n)
			}

			nodeEvents(b, d, peers)
			// Reported after the loop, which resets what came before.
			b.ReportMetric(float64(memPeers-memBefore)/(1<<20), "MiB-device+peers")
			b.ReportMetric(float64(memPeers-memDevice)/(1<<20), "MiB-peers")
			b.ReportMetric(float64(grPeers-grBefore), "goroutines")
			b.ReportMetric(float64(grPeers-grDevice), "goroutines-peers")
			b.ReportMetric(float64(configured), "configured")
		})
	}
}

// benchOnDemand is an onDemand with desired peers, all active: the packet
// paths' steady state, where the wrapper only checks.
func benchOnDemand(b *testing.B, peers []Peer) *onDemand {
	od := newOnDemand(defaultIdleTimeout, Key{}, zap.NewNop())
	od.setDesiredLocked(indexPeers(peers), indexPeers(peers), timeZero)
	if c := od.nConfigured.Load(); int(c) != len(peers) {
		b.Fatalf("%d active, want %d", c, len(peers))
	}
	return od
}

// batchTUN returns the same batch of packets on every Read.
type batchTUN struct {
	tun.Device
	pkts [][]byte
}

func (t *batchTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for i, p := range t.pkts {
		copy(bufs[i][offset:], p)
		sizes[i] = len(p)
	}
	return len(t.pkts), nil
}

// BenchmarkOnDemandTUNRead is the outbound wrapper's cost per packet when
// the packets' peers are active (5000 desired /24s), over a batch of 128
// IPv4 packets to different peers. The "bare" case is the same Read without
// the wrapper.
func BenchmarkOnDemandTUNRead(b *testing.B) {
	peers := benchPeers(b, 5000)
	const batch, offset = 128, 16
	inner := &batchTUN{}
	for i := range batch {
		pkt := make([]byte, 64)
		pkt[0] = 0x45
		dst := peers[(i*37)%len(peers)].AllowedIPs[0].Addr().As4()
		dst[3] = 7
		copy(pkt[ipv4DstOffset:], dst[:])
		inner.pkts = append(inner.pkts, pkt)
	}
	bufs, sizes := make([][]byte, batch), make([]int, batch)
	for i := range bufs {
		bufs[i] = make([]byte, offset+1500)
	}
	for _, wrapped := range []bool{false, true} {
		b.Run(map[bool]string{false: "bare", true: "ondemand"}[wrapped], func(b *testing.B) {
			var dev tun.Device = inner
			if wrapped {
				dev = &onDemandTUN{Device: inner, od: benchOnDemand(b, peers)}
			}
			b.ReportAllocs()
			for b.Loop() {
				if n, err := dev.Read(bufs, sizes, offset); n != batch || err != nil {
					b.Fatal(n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/packet")
		})
	}
}

// BenchmarkOnDemandReceive is the inbound wrapper's cost per datagram from
// active peers (5000 desired), over a batch of 128: from 128 different peers
// (the worst case), or all from one (a GRO batch).
func BenchmarkOnDemandReceive(b *testing.B) {
	peers := benchPeers(b, 5000)
	const batch = 128
	pkts, sizes := make([][]byte, batch), make([]int, batch)
	for i := range batch {
		pkts[i] = make([]byte, 128)
		binary.LittleEndian.PutUint32(pkts[i], 4) // transport data
	}
	inner := conn.ReceiveFunc(func(packets [][]byte, sz []int, _ []conn.Endpoint) (int, error) {
		for i := range packets {
			sz[i] = 128
		}
		return len(packets), nil
	})
	for _, spread := range []bool{true, false} {
		eps := make([]conn.Endpoint, batch)
		for i := range batch {
			j := 0
			if spread {
				j = (i * 37) % len(peers)
			}
			eps[i] = &conn.StdNetEndpoint{AddrPort: peers[j].Endpoint}
		}
		for _, wrapped := range []bool{false, true} {
			name := map[bool]string{false: "bare", true: "ondemand"}[wrapped] + map[bool]string{false: "/one-peer", true: "/128-peers"}[spread]
			b.Run(name, func(b *testing.B) {
				fn := inner
				if wrapped {
					fn = benchOnDemand(b, peers).receiveFunc(inner)
				}
				b.ReportAllocs()
				for b.Loop() {
					if n, err := fn(pkts, sizes, eps); n != batch || err != nil {
						b.Fatal(n, err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/packet")
			})
		}
	}
}

// BenchmarkODTableLookup is one longest-prefix match in a table of 5000
// desired /24s, for a destination that matches and one that does not.
func BenchmarkODTableLookup(b *testing.B) {
	peers := benchPeers(b, 5000)
	od := benchOnDemand(b, peers)
	tab := od.table.Load()
	for _, tc := range []struct {
		name string
		addr netip.Addr
	}{
		{"hit", netip.MustParseAddr("10.150.20.7")},
		{"miss", netip.MustParseAddr("192.0.2.1")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pkt := make([]byte, 40)
			pkt[0] = 0x45
			a := tc.addr.As4()
			copy(pkt[ipv4DstOffset:], a[:])
			var p *odPeer
			for b.Loop() {
				p = tab.lookupPacket(pkt)
			}
			if (p != nil) != (tc.name == "hit") {
				b.Fatalf("lookup %v: %v", tc.addr, p)
			}
		})
	}
}

// BenchmarkOnDemandSetDesired is the on-demand bookkeeping of one Node event
// at 5000 desired peers (none active), without the device: one peer's pod
// CIDRs change, so the lookup table is rebuilt ("changed"), or nothing the
// table holds changes ("same").
func BenchmarkOnDemandSetDesired(b *testing.B) {
	peers := benchPeers(b, 5000)
	for _, change := range []bool{true, false} {
		b.Run(map[bool]string{true: "changed", false: "same"}[change], func(b *testing.B) {
			od := newOnDemand(defaultIdleTimeout, Key{}, zap.NewNop())
			own := peers[0].AllowedIPs[0]
			k := 0
			b.ReportAllocs()
			for b.Loop() {
				if change {
					extra := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64, byte(2 * (k % 2)), 0}), 24)
					peers[0].AllowedIPs = []netip.Prefix{own, extra}
				}
				od.setDesiredLocked(indexPeers(peers), nil, timeZero)
				k++
			}
			peers[0].AllowedIPs = []netip.Prefix{own}
		})
	}
}
