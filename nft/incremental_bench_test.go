package nft

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/crosswire/crosswire/internal/testenv"
)

// benchNetNS creates a throwaway named namespace for a benchmark (newNS is
// for tests) and removes it when the benchmark ends.
func benchNetNS(b *testing.B) netns.NsHandle {
	b.Helper()
	testenv.RequireRoot(b, "creates network namespaces")
	r := make([]byte, 4)
	if _, err := rand.Read(r); err != nil {
		b.Fatal(err)
	}
	name := "cwnftb-" + hex.EncodeToString(r)
	runtime.LockOSThread()
	origin, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		b.Fatal(err)
	}
	defer origin.Close()
	h, err := netns.NewNamed(name)
	if serr := netns.Set(origin); serr != nil {
		b.Fatalf("restore netns: %v", serr) // the thread stays locked and is discarded
	}
	runtime.UnlockOSThread()
	if err != nil {
		b.Fatalf("create netns %s: %v", name, err)
	}
	b.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			b.Errorf("delete netns %s: %v", name, err)
		}
	})
	return h
}

// BenchmarkRemoteEvent is the nft part of one Node event in the agent's
// incremental apply with n remote prefixes in the set: one prefix added
// (AddRemote) and the one it replaces removed (RemoveRemote).
func BenchmarkRemoteEvent(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ns := benchNetNS(b)
			m, err := New(validConfig(), WithNetNS(int(ns)))
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			st := State{Local: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/24")}}
			for i := range n {
				st.Remote = append(st.Remote, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + i/128), byte(2 * (i % 128)), 0}), 24))
			}
			if err := m.Apply(st); err != nil {
				b.Fatal(err)
			}
			extra := func(k int) []netip.Prefix {
				return []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 64, byte(2 * (k % 2)), 0}), 24)}
			}
			k := 0
			var adding, removing time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := m.AddRemote(extra(k + 1)); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := m.RemoveRemote(extra(k)); err != nil {
					b.Fatal(err)
				}
				adding += t1.Sub(t0)
				removing += time.Since(t1)
				k++
			}
			b.ReportMetric(float64(adding.Microseconds())/1000/float64(b.N), "add-ms")
			b.ReportMetric(float64(removing.Microseconds())/1000/float64(b.N), "remove-ms")
		})
	}
}
