package wgtun

import (
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// TestOwnReadsRecordedLooksNot: each read the device makes for its own
// purposes (SyncPeers) is recorded and observed, once, with the peers it
// found; an operator's Stats reads the device afresh and records and
// observes nothing.
func TestOwnReadsRecordedLooksNot(t *testing.T) {
	needRootForTUN(t)
	d := benchDevice(t)
	type obs struct {
		at    time.Time
		peers int
	}
	var seen []obs
	d.OnRead(func(at time.Time, peers []PeerStats) { seen = append(seen, obs{at, len(peers)}) })
	// Open read the device (before OnRead was set): recorded, no peers.
	if at, peers := d.LastStats(); at.IsZero() || len(peers) != 0 {
		t.Fatalf("fresh device: last read %v with %d peers", at, len(peers))
	}

	k, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	peer := Peer{PublicKey: k.PublicKey(), Endpoint: netip.MustParseAddrPort("192.0.2.7:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/24")}}
	before := time.Now()
	if _, err := d.SyncPeers([]Peer{peer}); err != nil {
		t.Fatal(err)
	}
	// SyncPeers read the device before writing the peer: one observation,
	// of the empty device.
	if len(seen) != 1 || seen[0].peers != 0 || seen[0].at.Before(before) {
		t.Fatalf("observations after SyncPeers: %+v", seen)
	}
	if at, peers := d.LastStats(); !at.Equal(seen[0].at) || len(peers) != 0 {
		t.Fatalf("LastStats %v %d peers, want the observed read", at, len(peers))
	}

	stats, err := d.Stats()
	if err != nil || len(stats) != 1 || stats[0].PublicKey != peer.PublicKey {
		t.Fatalf("Stats = %+v, %v", stats, err)
	}
	if at, peers := d.LastStats(); len(seen) != 1 || !at.Equal(seen[0].at) || len(peers) != 0 {
		t.Fatalf("Stats was recorded or observed: %+v, last %v %d peers", seen, at, len(peers))
	}

	if _, err := d.SyncPeers([]Peer{peer}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[1].peers != 1 {
		t.Fatalf("observations after the second SyncPeers: %+v", seen)
	}
	if _, peers := d.LastStats(); len(peers) != 1 || peers[0].PublicKey != peer.PublicKey {
		t.Fatalf("LastStats after the second SyncPeers: %+v", peers)
	}
}

// BenchmarkResyncRead is the WireGuard part of a resync with n peers in
// sync: SyncPeers, whose one read of every peer is recorded and observed,
// against the same with the separate Stats read the status tracker used to
// add before it ("+stats"); Stats alone is what `crosswire status` reads.
func BenchmarkResyncRead(b *testing.B) {
	needRootForTUN(b)
	for _, n := range []int{100, 1000, 5000} {
		d := benchDevice(b)
		d.OnRead(func(time.Time, []PeerStats) {})
		peers := benchPeers(b, n)
		if _, err := d.SyncPeers(peers); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("sync/%d", n), func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				if diff, err := d.SyncPeers(peers); err != nil || diff != "" {
					b.Fatalf("SyncPeers = %q, %v", diff, err)
				}
			}
		})
		b.Run(fmt.Sprintf("sync+stats/%d", n), func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := d.Stats(); err != nil {
					b.Fatal(err)
				}
				if diff, err := d.SyncPeers(peers); err != nil || diff != "" {
					b.Fatalf("SyncPeers = %q, %v", diff, err)
				}
			}
		})
		b.Run(fmt.Sprintf("stats/%d", n), func(b *testing.B) {
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := d.Stats(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// reportCPU starts measuring the process's CPU time (user + system, the
// UAPI server's goroutines included); the function it returns reports it
// per operation, a figure a loaded machine distorts less than wall time.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() { b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op") }
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
