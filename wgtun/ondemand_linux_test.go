package wgtun

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// odPair is two on-demand devices in namespaces a and b, tunnel addresses
// 10.99.0.1 (a) and 10.99.0.2 (b), each desiring the other.
type odPair struct {
	n            *testNet
	name         string
	cfgA, cfgB   Config
	devA, devB   *Device
	peerA, peerB Peer // the peers as the other side desires them
}

func newODPair(t *testing.T, idle time.Duration) *odPair {
	t.Helper()
	requirePrivileged(t)
	p := &odPair{n: newTestNet(t), name: "cw" + randHex(t, 3)}
	keyA, _ := GeneratePrivateKey()
	keyB, _ := GeneratePrivateKey()
	p.cfgA = Config{Name: p.name, MTU: 1420, ListenPort: 51820, PrivateKey: keyA,
		SocketDir: filepath.Join(t.TempDir(), "wireguard"), Logger: testLogger(), OnDemand: true, IdleTimeout: idle}
	p.cfgB = p.cfgA
	p.cfgB.PrivateKey, p.cfgB.SocketDir = keyB, filepath.Join(t.TempDir(), "wireguard")
	p.peerA = Peer{PublicKey: keyA.PublicKey(), Endpoint: netip.MustParseAddrPort("192.168.99.1:51820"), AllowedIPs: pfxs("10.99.0.1/32")}
	p.peerB = Peer{PublicKey: keyB.PublicKey(), Endpoint: netip.MustParseAddrPort("192.168.99.2:51820"), AllowedIPs: pfxs("10.99.0.2/32")}
	p.devA = openIn(t, p.n.a, p.cfgA)
	p.devB = p.openB(t)
	addTunnelAddr(t, nsHandle(t, p.n.a), p.name, "10.99.0.1", "10.99.0.2")
	if err := p.devA.SetPeers([]Peer{p.peerB}); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *odPair) openB(t *testing.T) *Device {
	t.Helper()
	d := openIn(t, p.n.b, p.cfgB)
	addTunnelAddr(t, nsHandle(t, p.n.b), p.name, "10.99.0.2", "10.99.0.1")
	if err := d.SetPeers([]Peer{p.peerA}); err != nil {
		t.Fatal(err)
	}
	return d
}

// pingOnce sends a single echo request and waits up to wait seconds.
func pingOnce(ns, dst string, wait int) error {
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", fmt.Sprint(wait), dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping -c 1 %s from %s: %v\n%s", dst, ns, err, out)
	}
	return nil
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func assertCounts(t *testing.T, d *Device, desired, configured int) {
	t.Helper()
	if gd, gc := d.PeerCounts(); gd != desired || gc != configured {
		t.Fatalf("%s: PeerCounts %d desired %d configured, want %d %d", d.cfg.PrivateKey.PublicKey(), gd, gc, desired, configured)
	}
}

func configured(t *testing.T, d *Device) int { return len(peerIPs(t, d)) }

// TestOnDemandFirstPacket: desired peers cost nothing until traffic, and
// the very first packet brings up both sides: a by its outgoing packet, b by
// the handshake initiation it receives.
func TestOnDemandFirstPacket(t *testing.T) {
	p := newODPair(t, 0)
	for _, d := range []*Device{p.devA, p.devB} {
		if n := configured(t, d); n != 0 {
			t.Fatalf("%d peers configured before any traffic", n)
		}
		assertCounts(t, d, 1, 0)
		// A resync does not count inactive peers as missing.
		if drift, err := d.SyncPeers([]Peer{map[*Device]Peer{p.devA: p.peerB, p.devB: p.peerA}[d]}); err != nil || drift != "" {
			t.Fatalf("resync of an idle on-demand device: drift %q, err %v", drift, err)
		}
	}
	if n := configured(t, p.devA); n != 0 {
		t.Fatalf("SyncPeers configured %d inactive peers", n)
	}

	if err := pingOnce(p.n.a, "10.99.0.2", 2); err != nil {
		t.Fatalf("first packet lost: %v", err)
	}
	if got := peerIPs(t, p.devA)[p.peerB.PublicKey]; len(got) != 1 || got[0] != "10.99.0.2/32" {
		t.Fatalf("a after outbound activation: %v", peerIPs(t, p.devA))
	}
	if got := peerIPs(t, p.devB)[p.peerA.PublicKey]; len(got) != 1 || got[0] != "10.99.0.1/32" {
		t.Fatalf("b after inbound activation: %v", peerIPs(t, p.devB))
	}
	assertCounts(t, p.devA, 1, 1)
	assertCounts(t, p.devB, 1, 1)
	if hs := peerStats(t, p.devB, p.peerA.PublicKey).LastHandshake; hs.IsZero() {
		t.Fatal("b has no handshake")
	}

	// Changes to an active peer are written; a record-based SetPeers of
	// the same set writes nothing.
	p.peerB.AllowedIPs = pfxs("10.99.0.2/32", "10.98.2.0/24")
	if err := p.devA.SetPeers([]Peer{p.peerB}); err != nil {
		t.Fatal(err)
	}
	if got := peerIPs(t, p.devA)[p.peerB.PublicKey]; len(got) != 2 {
		t.Fatalf("active peer not updated: %v", got)
	}
	sets := p.devA.ipcSets.Load()
	if err := p.devA.SetPeers([]Peer{p.peerB}); err != nil || p.devA.ipcSets.Load() != sets {
		t.Fatalf("unchanged SetPeers: err %v, %d writes", err, p.devA.ipcSets.Load()-sets)
	}

	// An active peer removed by hand is missing, as without on-demand.
	if err := p.devA.wg.IpcSet(fmt.Sprintf("public_key=%s\nremove=true\n", p.peerB.PublicKey.hex())); err != nil {
		t.Fatal(err)
	}
	drift, err := p.devA.SyncPeers([]Peer{p.peerB})
	if err != nil || drift != "tunnel peers: 1 missing, 0 differ, 0 unexpected" {
		t.Fatalf("SyncPeers after a manual removal: drift %q, err %v", drift, err)
	}
	if n := configured(t, p.devA); n != 1 {
		t.Fatalf("SyncPeers did not restore the active peer: %d configured", n)
	}

	// A peer no longer desired is removed, and its prefixes lead nowhere.
	if err := p.devA.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	if n := configured(t, p.devA); n != 0 {
		t.Fatalf("undesired peer still configured (%d)", n)
	}
	assertCounts(t, p.devA, 0, 0)
	if err := pingOnce(p.n.a, "10.99.0.2", 1); err == nil {
		t.Fatal("ping works without a desired peer")
	}
	if n := configured(t, p.devA); n != 0 {
		t.Fatalf("traffic to an undesired peer configured %d peers", n)
	}
}

// TestOnDemandIdleTrim: once traffic stops both sides drop the peer, and the
// next packet brings it back, again without loss.
func TestOnDemandIdleTrim(t *testing.T) {
	const idle = 2 * time.Second
	p := newODPair(t, idle)
	for round := range 2 {
		start := time.Now()
		if err := pingOnce(p.n.a, "10.99.0.2", 2); err != nil {
			t.Fatalf("round %d: first packet lost: %v", round, err)
		}
		if a, b := configured(t, p.devA), configured(t, p.devB); a != 1 || b != 1 {
			t.Fatalf("round %d: configured peers a %d b %d, want 1 1", round, a, b)
		}
		// Idle after 2 s, checked every 0.5 s.
		waitUntil(t, 3*idle, "both sides to trim the idle peer", func() bool {
			return configured(t, p.devA) == 0 && configured(t, p.devB) == 0
		})
		t.Logf("round %d: trimmed %v after the ping", round, time.Since(start).Round(10*time.Millisecond))
		assertCounts(t, p.devA, 1, 0)
		assertCounts(t, p.devB, 1, 0)
		// Trimmed peers are not drift, and a resync leaves them out.
		if drift, err := p.devA.SyncPeers([]Peer{p.peerB}); err != nil || drift != "" {
			t.Fatalf("resync after trim: drift %q, err %v", drift, err)
		}
	}
}

// TestOnDemandRestart: b restarts while a keeps its session. a's next packet
// is transport data b cannot decrypt; b's inbound activation answers it with
// a handshake, so traffic flows again after one lost packet. Without that
// handshake a would keep its stale session until its own rekey timeout
// (KeepaliveTimeout + RekeyTimeout = 15 s after the first unanswered packet),
// so a bound of 3 s tells the two apart with margin: the fast path takes one
// ping interval (1 s, the lost packet's wait) plus a round trip.
func TestOnDemandRestart(t *testing.T) {
	p := newODPair(t, 0)
	if err := pingOnce(p.n.a, "10.99.0.2", 2); err != nil {
		t.Fatal(err)
	}
	if err := p.devB.Close(); err != nil {
		t.Fatal(err)
	}
	nlB := nsHandle(t, p.n.b)
	waitUntil(t, 3*time.Second, "interface removal in b", func() bool {
		_, err := nlB.LinkByName(p.name)
		return errors.As(err, new(netlink.LinkNotFoundError))
	})
	p.devB = p.openB(t)
	if n := configured(t, p.devB); n != 0 {
		t.Fatalf("restarted b configured %d peers before traffic", n)
	}
	if n := configured(t, p.devA); n != 1 {
		t.Fatalf("a lost its peer (%d configured): the test needs its stale session", n)
	}

	start := time.Now()
	var attempts int
	for {
		attempts++
		if pingOnce(p.n.a, "10.99.0.2", 1) == nil {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("no reply from restarted b after %d pings", attempts)
		}
	}
	elapsed := time.Since(start)
	t.Logf("first reply from restarted b after %v (%d pings)", elapsed.Round(time.Millisecond), attempts)
	if elapsed > 3*time.Second {
		t.Fatalf("traffic resumed only after %v: the stale session was not replaced at once", elapsed)
	}
	if hs := peerStats(t, p.devB, p.peerA.PublicKey).LastHandshake; hs.IsZero() || hs.Before(start) {
		t.Fatalf("restarted b's handshake %v, want after %v", hs, start)
	}
}

// udpSender sends datagrams from inside namespace ns until stopped.
type udpSender struct {
	conn net.PacketConn
	stop chan struct{}
	wg   sync.WaitGroup
}

func newUDPSender(t *testing.T, ns string) *udpSender {
	t.Helper()
	var c net.PacketConn
	var err error
	// The socket belongs to the namespace it is created in; sends may come
	// from any thread.
	inNS(t, ns, func() { c, err = net.ListenPacket("udp4", ":0") })
	if err != nil {
		t.Fatal(err)
	}
	s := &udpSender{conn: c, stop: make(chan struct{})}
	t.Cleanup(s.close)
	return s
}

func (s *udpSender) send(dst netip.Addr) {
	s.conn.WriteTo([]byte("crosswire"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9))) //nolint:errcheck // best effort
}

// flood sends to dsts in turn until close.
func (s *udpSender) flood(dsts []netip.Addr) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				return
			default:
			}
			s.send(dsts[i%len(dsts)])
			if i%64 == 63 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
}

func (s *udpSender) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	s.wg.Wait()
	s.conn.Close()
}

// fakePeers returns n peers with allowed IPs 10.200.i.0/24 (under
// 10.200.0.0/16) and endpoints on the underlay where nobody answers.
func fakePeers(t *testing.T, n int) ([]Peer, []netip.Addr) {
	t.Helper()
	var peers []Peer
	var dsts []netip.Addr
	for i := range n {
		k, err := GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, Peer{PublicKey: k.PublicKey(),
			Endpoint:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, 99, byte(10 + i%200)}), 51820),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i), 0}), 24)}})
		dsts = append(dsts, netip.AddrFrom4([4]byte{10, 200, byte(i), 1}))
	}
	return peers, dsts
}

// TestOnDemandCloseDuringActivations: a flood of packets to many inactive
// peers keeps the activator and the trimmer busy while Close runs; Close
// returns promptly and every goroutine ends.
func TestOnDemandCloseDuringActivations(t *testing.T) {
	requirePrivileged(t)
	n := newTestNet(t)
	name := "cw" + randHex(t, 3)
	before := runtime.NumGoroutine()

	key, _ := GeneratePrivateKey()
	cfg := Config{Name: name, MTU: 1420, ListenPort: 51820, PrivateKey: key, SocketDir: t.TempDir(),
		Logger: testLogger(), OnDemand: true, IdleTimeout: time.Second}
	d := openIn(t, n.a, cfg)
	run(t, "ip", "-n", n.a, "route", "add", "10.200.0.0/16", "dev", name)
	peers, dsts := fakePeers(t, 250)
	if err := d.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
	s := newUDPSender(t, n.a)
	s.flood(dsts)
	waitUntil(t, 5*time.Second, "activations under the flood", func() bool {
		_, c := d.PeerCounts()
		return c >= 50
	})
	// SetPeers keeps running too, against the activator and the trimmer.
	stopSets := make(chan struct{})
	var setsWG sync.WaitGroup
	setsWG.Add(1)
	go func() {
		defer setsWG.Done()
		for i := 0; ; i++ {
			select {
			case <-stopSets:
				return
			default:
			}
			d.SetPeers(peers[:200+i%50]) //nolint:errcheck // fails once closed
			time.Sleep(5 * time.Millisecond)
		}
	}()

	t.Logf("at Close: activator busy %v, %d requests queued", d.od.busySince.Load() != 0, len(d.od.reqs))
	start := time.Now()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	close(stopSets)
	setsWG.Wait()
	s.close()
	_, c := d.PeerCounts()
	t.Logf("Close took %v with %d peers configured", took.Round(time.Millisecond), c)
	if took > 2*maxActivationWait {
		t.Fatalf("Close took %v during activations", took)
	}

	// wireguard-go's workers end after Close returns, as their queues drain.
	const slack = 3 // runtime and test-framework goroutines that come and go
	waitUntil(t, 5*time.Second, "goroutines to end after Close", func() bool {
		return runtime.NumGoroutine() <= before+slack
	})
}

// TestOnDemandStuckActivator: while the activator cannot get on (here: the
// test holds setMu, as a long SetPeers would), a packet for an inactive peer
// holds the TUN reader for at most maxActivationWait; after that the reader
// stops waiting, and traffic to active peers flows at full speed.
func TestOnDemandStuckActivator(t *testing.T) {
	p := newODPair(t, 0)
	if err := pingOnce(p.n.a, "10.99.0.2", 2); err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "-n", p.n.a, "route", "add", "10.200.0.0/16", "dev", p.name)
	fake, dsts := fakePeers(t, 4)
	if err := p.devA.SetPeers(append(fake, p.peerB)); err != nil {
		t.Fatal(err)
	}
	s := newUDPSender(t, p.n.a)

	p.devA.setMu.Lock()
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			p.devA.setMu.Unlock()
		}
	}
	defer unlock()
	s.send(dsts[0]) // the TUN reader waits for the blocked activator
	start := time.Now()
	if err := pingOnce(p.n.a, "10.99.0.2", 3); err != nil {
		t.Fatalf("traffic to an active peer stalled behind a stuck activation: %v", err)
	}
	first := time.Since(start)
	s.send(dsts[1]) // the activator is now stuck for > maxActivationWait: no wait
	start = time.Now()
	if err := pingOnce(p.n.a, "10.99.0.2", 3); err != nil {
		t.Fatal(err)
	}
	second := time.Since(start)
	t.Logf("ping behind the first stuck activation %v, behind the second %v",
		first.Round(time.Millisecond), second.Round(time.Millisecond))
	if first > maxActivationWait+500*time.Millisecond {
		t.Fatalf("the first wait took %v, bound %v", first, maxActivationWait)
	}
	if second > 500*time.Millisecond {
		t.Fatalf("the TUN reader waited again (%v) for an activator already stuck", second)
	}
	unlock()
	waitUntil(t, 3*time.Second, "the queued activations", func() bool {
		_, c := p.devA.PeerCounts()
		return c == 3
	})
}

// TestPeerCountsWithoutOnDemand: every desired peer is configured.
func TestPeerCountsWithoutOnDemand(t *testing.T) {
	requirePrivileged(t)
	d := benchDevice(t)
	peers, _ := fakePeers(t, 3)
	if err := d.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
	assertCounts(t, d, 3, 3)
	if n := configured(t, d); n != 3 {
		t.Fatalf("%d peers on the device, want 3", n)
	}
	if _, err := d.SyncPeers(peers[:1]); err != nil {
		t.Fatal(err)
	}
	assertCounts(t, d, 1, 1)
}
