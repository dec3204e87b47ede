package pqpsk

import (
	"crypto/mlkem"
	"net/netip"
	"testing"
	"time"
)

// kem is the baseline: the ML-KEM-768 work one exchange cannot avoid (key
// generation, encapsulation, decapsulation).
func kem(b *testing.B) {
	dk, err := mlkem.GenerateKey768()
	if err != nil {
		b.Fatal(err)
	}
	ss, ct := dk.EncapsulationKey().Encapsulate()
	ss2, err := dk.Decapsulate(ct)
	if err != nil || string(ss) != string(ss2) {
		b.Fatal("decapsulation")
	}
}

// BenchmarkExchange is one complete exchange between two managers (both
// sides' CPU: four messages, parsing, MACs, key schedule, installation),
// interleaved with the bare ML-KEM baseline so that their ratio comes
// from the same moments of a shared machine.
func BenchmarkExchange(b *testing.B) {
	c := newCluster(b, 2)
	c.step(TickInterval)
	before := c.nodes[0].m.Counters().Exchanges
	var kemTime, exTime time.Duration
	for b.Loop() {
		t0 := time.Now()
		kem(b)
		t1 := time.Now()
		c.step(testRotate) // due: one rotation
		exTime += time.Since(t1)
		kemTime += t1.Sub(t0)
	}
	b.StopTimer()
	c.agree(c.nodes[0], c.nodes[1])
	if got := c.nodes[0].m.Counters().Exchanges - before; got != uint64(b.N) {
		b.Fatalf("%d exchanges in %d iterations", got, b.N)
	}
	b.ReportMetric(float64(exTime.Nanoseconds())/float64(b.N), "ns/exchange")
	b.ReportMetric(float64(kemTime.Nanoseconds())/float64(b.N), "ns/kem")
	b.ReportMetric(float64(exTime)/float64(kemTime), "exchange/kem")
}

// BenchmarkRotation1000Peers is one rotation of a node with 1000 peers:
// every one of its pairs agrees on a new key (the CPU of both ends of the
// 1000 exchanges; the node itself does half of it). ns/exchange is the
// same per pair.
func BenchmarkRotation1000Peers(b *testing.B) {
	const n = 1000
	clk, nw := newClock(), newNetwork()
	hubPriv, hubPub := newKey(b)
	hubAddr := netip.MustParseAddrPort("10.0.0.1:51821")
	hub, err := New(Config{Mode: ModeOn, PrivateKey: hubPriv, Rotate: testRotate, Now: clk.Now}, endpoint{n: nw, self: hubAddr}, newInstaller())
	if err != nil {
		b.Fatal(err)
	}
	nw.nodes[hubAddr] = hub
	ms := []*Manager{hub}
	var peers []Peer
	for i := range n {
		priv, pub := newKey(b)
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(i%250 + 1)}), DefaultPort)
		m, err := New(Config{Mode: ModeOn, PrivateKey: priv, Rotate: testRotate, Now: clk.Now}, endpoint{n: nw, self: addr}, newInstaller())
		if err != nil {
			b.Fatal(err)
		}
		m.SetPeers([]Peer{{Key: hubPub, Addr: hubAddr, PQ: true, Active: true}})
		nw.nodes[addr] = m
		ms = append(ms, m)
		peers = append(peers, Peer{Key: pub, Addr: addr, PQ: true, Active: true})
	}
	hub.SetPeers(peers)
	rotate := func() {
		clk.advance(testRotate)
		for _, m := range ms {
			m.Tick()
		}
		nw.pump(b)
	}
	rotate()
	before := hub.Counters().Exchanges
	b.ResetTimer()
	for b.Loop() {
		rotate()
	}
	b.StopTimer()
	if got := hub.Counters().Exchanges - before; got != uint64(b.N*n) {
		b.Fatalf("%d exchanges in %d rotations of %d peers", got, b.N, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/exchange")
}
