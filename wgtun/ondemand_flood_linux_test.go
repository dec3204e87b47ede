package wgtun

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// udpCapture reads the UDP datagrams crossing one interface of a namespace
// (both directions) from a packet socket, as tcpdump would.
type udpCapture struct {
	fd   int
	mu   sync.Mutex
	msgs []capturedUDP
	done chan struct{}
	stop func() // ends the capture; idempotent
}

type capturedUDP struct {
	src, dst netip.AddrPort
	payload  []byte
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func startUDPCapture(t *testing.T, ns, ifname string) *udpCapture {
	t.Helper()
	var fd int
	var err error
	inNS(t, ns, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(ifname); err != nil {
			return
		}
		if fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(htons(syscall.ETH_P_IP))); err != nil {
			return
		}
		err = syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_IP), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("packet socket on %s in %s: %v", ifname, ns, err)
	}
	tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	c := &udpCapture{fd: fd, done: make(chan struct{})}
	stop := make(chan struct{})
	go func() {
		defer close(c.done)
		buf := make([]byte, 65536)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				continue // timeout: look at stop
			}
			if m, ok := parseIPv4UDP(buf[:n]); ok {
				c.mu.Lock()
				c.msgs = append(c.msgs, m)
				c.mu.Unlock()
			}
		}
	}()
	var once sync.Once
	c.stop = func() {
		once.Do(func() {
			close(stop)
			<-c.done
			syscall.Close(fd)
		})
	}
	t.Cleanup(c.stop)
	return c
}

func parseIPv4UDP(pkt []byte) (capturedUDP, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != syscall.IPPROTO_UDP {
		return capturedUDP{}, false
	}
	ihl := int(pkt[0]&0xf) * 4
	if len(pkt) < ihl+8 {
		return capturedUDP{}, false
	}
	src := netip.AddrFrom4([4]byte(pkt[12:16]))
	dst := netip.AddrFrom4([4]byte(pkt[16:20]))
	udp := pkt[ihl:]
	return capturedUDP{
		src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:])),
		dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:])),
		payload: bytes.Clone(udp[8:]),
	}, true
}

// first returns the first captured payload to dst of the given kind.
func (c *udpCapture) first(dst netip.AddrPort, kind wgMsgKind) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if m.dst == dst && classifyMsg(m.payload) == kind {
			return m.payload
		}
	}
	return nil
}

// TestOnDemandSpoofFlood: a flood of spoofed datagrams from the endpoint
// address of every desired peer (junk, truncated and re-typed messages,
// initiations without a valid mac1, responses, cookie replies, and replays
// of a real handshake initiation and real transport data captured from the
// wire) at an on-demand device: the peers it configures stay within the
// guard's cap (which the flood reaches: the replayed transport data is
// admitted within the session window after start, from 101 addresses),
// the refusals are counted by reason, goroutines stay flat, our own
// traffic still activates its peer during the flood, and once the flood
// stops only the real peer is left.
func TestOnDemandSpoofFlood(t *testing.T) {
	p := newODPair(t, time.Minute)

	// A real exchange b -> a, captured on a's underlay.
	capA := startUDPCapture(t, p.n.a, "va")
	if err := pingOnce(p.n.b, "10.99.0.1", 2); err != nil {
		t.Fatalf("real inbound activation: %v", err)
	}
	aAddr := netip.MustParseAddrPort("192.168.99.1:51820")
	var initiation, transport []byte
	waitUntil(t, 2*time.Second, "captured initiation and transport data", func() bool {
		initiation, transport = capA.first(aAddr, msgInitiation), capA.first(aAddr, msgTransport)
		return initiation != nil && transport != nil
	})
	capA.stop() // it would hold the flood too
	if !p.devA.od.guard.mac1.valid(p.devA.od.guard.mac1.newMAC(), initiation) {
		t.Fatal("captured initiation has no valid mac1 for a")
	}

	// a desires 100 more peers, whose endpoint addresses b's side owns; b
	// itself is no longer configured on a, and its session there is gone.
	fake, _ := fakePeers(t, 100)
	if err := p.devA.SetPeers(fake); err != nil {
		t.Fatal(err)
	}
	if err := p.devA.SetPeers(append(fake, p.peerB)); err != nil {
		t.Fatal(err)
	}
	assertCounts(t, p.devA, 101, 0)
	srcs := []netip.Addr{p.peerB.Endpoint.Addr()}
	for _, f := range fake {
		srcs = append(srcs, f.Endpoint.Addr())
		run(t, "ip", "-n", p.n.b, "addr", "add", f.Endpoint.Addr().String()+"/32", "dev", "vb")
	}
	var socks []*net.UDPConn
	inNS(t, p.n.b, func() {
		for _, ip := range srcs {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
			if err != nil {
				t.Errorf("socket on %v: %v", ip, err)
				return
			}
			socks = append(socks, c)
		}
	})
	for _, c := range socks {
		t.Cleanup(func() { c.Close() })
	}
	if t.Failed() {
		t.FailNow()
	}

	junk := make([]byte, 200)
	rand.Read(junk) //nolint:errcheck // never fails
	withType := func(typ byte, n int) []byte {
		b := make([]byte, n)
		rand.Read(b) //nolint:errcheck // never fails
		b[0], b[1], b[2], b[3] = typ, 0, 0, 0
		return b
	}
	msgs := [][]byte{
		junk, junk[:7], initiation[:100], append(bytes.Clone(initiation), 0),
		initiation, transport, withType(1, 148), withType(2, 92), withType(3, 64), withType(4, 49),
	}

	before := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapInuse

	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		dst := net.UDPAddrFromAddrPort(aAddr)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := socks[i%len(socks)]
			c.WriteToUDP(msgs[(i/len(socks))%len(msgs)], dst) //nolint:errcheck // best effort
			sent.Add(1)
			if i%16 == 15 { // at most ~15000 datagrams a second: the machine is shared
				time.Sleep(time.Millisecond)
			}
		}
	}()
	stopFlood := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopFlood)

	// Sample while the flood runs for longer than an unconfirmed
	// activation may live, so some expire and are refilled.
	const bound = 1 + maxPendingInbound // b, and the pending slots
	var maxPeers, maxGoroutines int
	sample := func() {
		if n := configured(t, p.devA); n > maxPeers {
			maxPeers = n
		}
		if _, c := p.devA.PeerCounts(); c > maxPeers {
			maxPeers = c
		}
		maxGoroutines = max(maxGoroutines, runtime.NumGoroutine())
	}
	floodFor := unconfirmedTimeout + 3*confirmInterval
	deadline := time.Now().Add(floodFor)
	pinged := false
	for time.Now().Before(deadline) {
		sample()
		if !pinged && time.Until(deadline) < floodFor*2/3 {
			// Our own traffic activates b at once, flood or not. The
			// handshake may take a retry (RekeyTimeout): the flood of
			// initiations puts wireguard-go itself under load, and it then
			// answers b's response with a cookie reply first.
			if err := pingRetry(p.n.a, "10.99.0.2", 3); err != nil {
				st, _ := p.devA.Stats()
				var bst []PeerStats
				for _, x := range st {
					if x.PublicKey == p.peerB.PublicKey {
						bst = append(bst, x)
					}
				}
				stB, _ := p.devB.Stats()
				t.Errorf("outbound activation during the flood: %v; a has b: %+v; b has %+v", err, bst, stB)
			}
			pinged = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The heap grows under any UDP flood, on-demand or not: wireguard-go
	// queues up to 1024 handshake messages, each in a 64 KiB buffer. What
	// activations add is the peers and their goroutines, asserted below.
	runtime.ReadMemStats(&ms)
	heapDuring := ms.HeapInuse
	stopFlood()
	refused := p.devA.ActivationsRefused()
	t.Logf("flood: %d datagrams in %v; max %d peers configured (bound %d), goroutines %d -> max %d, heap in use %d -> %d KiB; refused %v",
		sent.Load(), floodFor, maxPeers, bound, before, maxGoroutines, heapBefore>>10, heapDuring>>10, refused)
	if maxPeers > bound {
		t.Errorf("the flood configured %d peers, bound %d", maxPeers, bound)
	}
	if maxPeers < maxPendingInbound {
		t.Errorf("the flood configured at most %d peers: it never reached the cap (%d), so the bound above proves nothing", maxPeers, maxPendingInbound)
	}
	// wireguard-go runs a few goroutines per configured peer.
	if limit := before + 4*bound + 20; maxGoroutines > limit {
		t.Errorf("goroutines rose from %d to %d under the flood (limit %d)", before, maxGoroutines, limit)
	}
	for _, r := range []string{RefusedMalformed, RefusedMAC1, RefusedUnexpected, RefusedReplay} {
		if refused[r] == 0 {
			t.Errorf("no %s refusals counted: %v", r, refused)
		}
	}
	if refused[RefusedPendingCap]+refused[RefusedRateLimited] == 0 {
		t.Errorf("the replayed initiations never hit the cap or the bucket: %v", refused)
	}

	// Unconfirmed activations expire: no spoofed peer stays.
	fakeConfigured := func() int {
		n := 0
		for k := range peerIPs(t, p.devA) {
			if k != p.peerB.PublicKey {
				n++
			}
		}
		return n
	}
	waitUntil(t, unconfirmedTimeout+3*confirmInterval, "the spoofed activations to expire", func() bool {
		return fakeConfigured() == 0 && p.devA.od.guard.nPending.Load() == 0
	})
	t.Logf("after the flood: %v", peerIPs(t, p.devA))
	// What the flood left: wireguard-go's buffer pools empty after two
	// collections; the peers it configured are gone.
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use after the flood: %d KiB (before %d KiB); goroutines %d (before %d)",
		ms.HeapInuse>>10, heapBefore>>10, runtime.NumGoroutine(), before)
	if grown := int64(ms.HeapInuse) - int64(heapBefore); grown > 16<<20 {
		t.Errorf("heap in use grew by %d KiB over the flood", grown>>10)
	}

	// And a real remote's traffic still activates its peer: b's packets
	// after a forgot it (its session with a is stale now).
	if err := p.devA.SetPeers(fake); err != nil {
		t.Fatal(err)
	}
	if err := p.devA.SetPeers(append(fake, p.peerB)); err != nil {
		t.Fatal(err)
	}
	if err := pingRetry(p.n.b, "10.99.0.1", 3); err != nil {
		t.Fatalf("inbound activation after the flood: %v", err)
	}
	if _, ok := peerIPs(t, p.devA)[p.peerB.PublicKey]; !ok {
		t.Fatalf("b not configured on a after its traffic: %v", peerIPs(t, p.devA))
	}
}

// pingRetry pings until a reply, at most tries times, 3 s each (a lost
// handshake is retried after RekeyTimeout, 5 s).
func pingRetry(ns, dst string, tries int) error {
	var err error
	for range tries {
		if err = pingOnce(ns, dst, 3); err == nil {
			return nil
		}
	}
	return err
}

// TestOnDemandForgedDataExpires: replayed transport data from a real
// peer's address (inside the session window after start) activates the
// peer, and the handshake we start completes, as the real remote answers
// it; but no data follows, so the activation is not confirmed and the
// peer is removed after unconfirmedTimeout. Real data confirms instead.
func TestOnDemandForgedDataExpires(t *testing.T) {
	p := newODPair(t, time.Minute)
	capA := startUDPCapture(t, p.n.a, "va")
	if err := pingOnce(p.n.b, "10.99.0.1", 2); err != nil {
		t.Fatal(err)
	}
	aAddr := netip.MustParseAddrPort("192.168.99.1:51820")
	var transport []byte
	waitUntil(t, 2*time.Second, "captured transport data", func() bool {
		transport = capA.first(aAddr, msgTransport)
		return transport != nil
	})
	capA.stop()

	// a forgets b; a replay of b's data from b's address brings it back.
	if err := p.devA.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.devA.SetPeers([]Peer{p.peerB}); err != nil {
		t.Fatal(err)
	}
	var sock *net.UDPConn
	var err error
	inNS(t, p.n.b, func() {
		sock, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.peerB.Endpoint.Addr(), 0)))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if _, err := sock.WriteToUDP(transport, net.UDPAddrFromAddrPort(aAddr)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Second, "a to activate b and complete a handshake", func() bool {
		st, err := p.devA.Stats()
		return err == nil && len(st) == 1 && !st[0].LastHandshake.IsZero()
	})
	start := time.Now()
	waitUntil(t, unconfirmedTimeout+3*confirmInterval, "the unconfirmed peer to be removed", func() bool {
		return configured(t, p.devA) == 0
	})
	t.Logf("removed %v after the handshake", time.Since(start).Round(100*time.Millisecond))
	if n := p.devA.od.guard.nPending.Load(); n != 0 {
		t.Errorf("%d pending slots held", n)
	}

	// The real remote's traffic: its session with a is stale again, so
	// its data activates b, and the data after the new handshake confirms
	// it: b stays past the unconfirmed timeout.
	if err := pingRetry(p.n.b, "10.99.0.1", 3); err != nil {
		t.Fatal(err)
	}
	time.Sleep(unconfirmedTimeout + 2*confirmInterval)
	if configured(t, p.devA) != 1 {
		t.Fatal("a removed b although its real data followed the handshake")
	}
	if n := p.devA.od.guard.nPending.Load(); n != 0 {
		t.Errorf("%d pending slots held after confirmation", n)
	}
}
