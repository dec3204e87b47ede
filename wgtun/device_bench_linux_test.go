package wgtun

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"slices"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/crosswire/crosswire/internal/testenv"
)

// BenchmarkSetPeersEvent is the WireGuard part of one Node event in the
// agent's incremental apply with n peers: SetPeers with every peer, one of
// which gained a pod CIDR (and lost the previous event's).
func BenchmarkSetPeersEvent(b *testing.B) {
	needRootForTUN(b)
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			d := benchDevice(b)
			peers := benchPeers(b, n)
			if err := d.SetPeers(peers); err != nil {
				b.Fatal(err)
			}
			nodeEvents(b, d, peers)
		})
	}
}

// nodeEvents is the timed loop of a Node-event benchmark: every iteration
// moves peers[0]'s extra pod CIDR to another prefix and applies all peers.
// peers[0] gets its own allowed IPs back afterwards.
func nodeEvents(b *testing.B, d *Device, peers []Peer) {
	own := peers[0].AllowedIPs
	defer func() { peers[0].AllowedIPs = own }()
	k := 0
	for b.Loop() {
		extra := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64, byte(2 * (k % 2)), 0}), 24)
		peers[0].AllowedIPs = append(slices.Clone(own), extra)
		if err := d.SetPeers(peers); err != nil {
			b.Fatal(err)
		}
		k++
	}
}

// benchDevice opens a device in a throwaway namespace, closed and removed
// when the benchmark or test ends.
func benchDevice(b testing.TB) *Device {
	b.Helper()
	return benchDeviceWith(b, nil)
}

// benchDeviceWith is benchDevice with the config changed by mod (if not nil).
func benchDeviceWith(b testing.TB, mod func(*Config)) *Device {
	b.Helper()
	r := make([]byte, 4)
	if _, err := rand.Read(r); err != nil {
		b.Fatal(err)
	}
	name := "cwwgb-" + hex.EncodeToString(r)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v\n%s", err, out)
	}
	b.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			b.Errorf("delete netns %s: %v\n%s", name, err, out)
		}
	})
	key, err := GeneratePrivateKey()
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Name: "cwb0", MTU: 1420, ListenPort: 0, PrivateKey: key, SocketDir: b.TempDir(), Logger: testLogger()}
	if mod != nil {
		mod(&cfg)
	}
	done := make(chan error, 1)
	var d *Device
	go func() {
		// The thread stays locked: Go discards it instead of reusing it in
		// the namespace.
		runtime.LockOSThread()
		h, err := netns.GetFromName(name)
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err == nil {
			d, err = Open(cfg)
		}
		done <- err
	}()
	if err := <-done; err != nil {
		b.Fatalf("open device in %s: %v", name, err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// needRootForTUN stops tests and benchmarks that need a namespace and a
// TUN device when not run as root (see testenv).
func needRootForTUN(tb testing.TB) {
	tb.Helper()
	testenv.RequireRoot(tb, "creates a network namespace and a TUN device")
}

// BenchmarkUpdatePeersEvent is the WireGuard part of one Node event as the
// agent applies it, UpdatePeers with the one changed peer, with n desired
// peers, every one a configured peer ("all") or none active yet
// ("on-demand"): flat in n for both.
func BenchmarkUpdatePeersEvent(b *testing.B) {
	needRootForTUN(b)
	for _, onDemand := range []bool{false, true} {
		for _, n := range []int{100, 1000, 5000} {
			b.Run(fmt.Sprintf("%s/%d", map[bool]string{false: "all", true: "on-demand"}[onDemand], n), func(b *testing.B) {
				d := benchDeviceWith(b, func(c *Config) { c.OnDemand = onDemand })
				peers := benchPeers(b, n)
				if err := d.SetPeers(peers); err != nil {
					b.Fatal(err)
				}
				own := peers[0]
				k := 0
				b.ReportAllocs()
				for b.Loop() {
					p := own
					p.AllowedIPs = append(slices.Clone(own.AllowedIPs), netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64, byte(2 * (k % 2)), 0}), 24))
					if err := d.UpdatePeers([]Peer{p}, nil); err != nil {
						b.Fatal(err)
					}
					k++
				}
			})
		}
	}
}
