package wgtun

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
)

// udpFlow sends a datagram every 10 ms from one tunnel address to the
// other's port 9000 and records when the last one arrived.
type udpFlow struct {
	last atomic.Int64 // unix nanos of the last arrival
	stop chan struct{}
}

func startUDPFlow(t *testing.T, fromNS, toNS string, from, to netip.Addr) *udpFlow {
	t.Helper()
	f := &udpFlow{stop: make(chan struct{})}
	var rx, tx net.PacketConn
	var err error
	inNS(t, toNS, func() { rx, err = net.ListenPacket("udp4", netip.AddrPortFrom(to, 9000).String()) })
	if err != nil {
		t.Fatal(err)
	}
	inNS(t, fromNS, func() { tx, err = net.ListenPacket("udp4", netip.AddrPortFrom(from, 0).String()) })
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := rx.ReadFrom(buf); err != nil {
				return
			}
			f.last.Store(time.Now().UnixNano())
		}
	}()
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, 9000))
		for {
			select {
			case <-f.stop:
				return
			case <-tick.C:
				tx.WriteTo([]byte("crosswire"), dst) //nolint:errcheck // best effort
			}
		}
	}()
	t.Cleanup(func() { close(f.stop); rx.Close(); tx.Close() })
	return f
}

func (f *udpFlow) since(t0 time.Time) bool { return f.last.Load() > t0.UnixNano() }

// debugLogger logs everything, wireguard-go's handshake events included, to path.
func debugLogger(t *testing.T, path string) *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.OutputPaths = []string{path}
	l, err := cfg.Build()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestResetPeerRaceStress repeats the fresh start of a post-quantum pair
// (both ends locked with random keys, then re-created with the agreed one,
// 0–4 ms apart, the second initiating) under traffic both ways, RESET_STRESS
// times, and fails if any took over 2 s to carry traffic both ways again.
// Too long for every run (600 take about 2 minutes); RESET_STRESS_LOGS=dir
// writes both devices' debug logs (wireguard-go's handshake events) there.
// Before the quiet end (ResetPeer) about 2% of fresh starts lost one
// direction for 15 s to crossing initiations.
func TestResetPeerRaceStress(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("RESET_STRESS"))
	if n == 0 {
		t.Skip("RESET_STRESS unset")
	}
	logA, logB := testLogger(), testLogger()
	if dir := os.Getenv("RESET_STRESS_LOGS"); dir != "" {
		logA, logB = debugLogger(t, dir+"/A.log"), debugLogger(t, dir+"/B.log")
	}
	p := newPSKPairLogging(t, false, logA, logB)
	k := randomKey()
	_ = p.devA.SetPresharedKey(p.pubB, k)
	_ = p.devB.SetPresharedKey(p.pubA, k)
	p.devA.InitiateHandshakes()
	waitPing(t, p.n.a, "10.99.0.2")
	ab := startUDPFlow(t, p.n.a, p.n.b, netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2"))
	ba := startUDPFlow(t, p.n.b, p.n.a, netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.1"))
	var worst time.Duration
	var slow int
	for i := range n {
		// Locked: both sides random keys, traffic starts doomed handshakes.
		_ = p.devA.FailClosed(p.pubB)
		_ = p.devB.FailClosed(p.pubA)
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		k := randomKey()
		first, second := p.devA, p.devB
		fk, sk := p.pubB, p.pubA
		if rand.IntN(2) == 0 {
			first, second, fk, sk = second, first, sk, fk
		}
		first.log.Info("fresh start", zap.Int("i", i), zap.Bool("firstIsA", first == p.devA))
		second.log.Info("fresh start", zap.Int("i", i), zap.Bool("firstIsA", first == p.devA))
		if err := first.ResetPeer(fk, k, false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond)
		if err := second.ResetPeer(sk, k, true); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		for !ab.since(t0) || !ba.since(t0) {
			if time.Since(t0) > 20*time.Second {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(t0)
		worst = max(worst, took)
		if took > 2*time.Second {
			slow++
			t.Logf("iteration %d: traffic both ways after %v", i, took.Round(time.Millisecond))
		}
	}
	t.Logf("%d fresh starts, worst %v", n, worst.Round(time.Millisecond))
	if slow > 0 {
		t.Errorf("%d of %d fresh starts took over 2 s", slow, n)
	}
}
