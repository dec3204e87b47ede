package pqpsk

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock shared by a test's managers.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// installer records what a manager asks of WireGuard, like wgtun: a peer
// without a recorded key holds a random one.
type installer struct {
	mu        sync.Mutex
	psk       map[Key]Key
	installed map[Key][]Key // every key set, in order
	closed    map[Key]int   // FailClosed calls
	fail      bool          // SetPresharedKey fails
	resets    int           // ResetPeer calls
}

func newInstaller() *installer {
	return &installer{psk: map[Key]Key{}, installed: map[Key][]Key{}, closed: map[Key]int{}}
}

func (in *installer) SetPresharedKey(peer, psk Key) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.fail {
		return fmt.Errorf("injected failure")
	}
	in.psk[peer] = psk
	in.installed[peer] = append(in.installed[peer], psk)
	return nil
}

func (in *installer) ResetPeer(peer, psk Key, _ bool) error {
	in.mu.Lock()
	in.resets++
	in.mu.Unlock()
	return in.SetPresharedKey(peer, psk)
}

func (in *installer) FailClosed(peer Key) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	var k Key
	_, _ = rand.Read(k[:])
	in.psk[peer] = k
	in.closed[peer]++
	return nil
}

func (in *installer) ForgetPresharedKey(peer Key) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.psk, peer)
}

func (in *installer) get(peer Key) (Key, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	k, ok := in.psk[peer]
	return k, ok
}

func (in *installer) history(peer Key) []Key {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Key(nil), in.installed[peer]...)
}

func (in *installer) closes(peer Key) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.closed[peer]
}

// packet is one datagram in flight.
type packet struct {
	from, to netip.AddrPort
	b        []byte
}

// network delivers datagrams between managers by address. filter, if
// set, sees every datagram and returns the ones to deliver instead (none
// to drop, changed ones to rewrite, more to inject).
type network struct {
	mu     sync.Mutex
	queue  []packet
	nodes  map[netip.AddrPort]*Manager
	filter func(packet) []packet
	sent   int
}

func newNetwork() *network { return &network{nodes: map[netip.AddrPort]*Manager{}} }

type endpoint struct {
	n    *network
	self netip.AddrPort
}

func (e endpoint) Send(to netip.AddrPort, b []byte) error {
	e.n.mu.Lock()
	defer e.n.mu.Unlock()
	e.n.queue = append(e.n.queue, packet{from: e.self, to: to, b: append([]byte(nil), b...)})
	e.n.sent++
	return nil
}

// pump delivers until nothing is in flight (bounded, in case of a loop).
func (n *network) pump(t testing.TB) {
	t.Helper()
	for range 10000 {
		n.mu.Lock()
		if len(n.queue) == 0 {
			n.mu.Unlock()
			return
		}
		p := n.queue[0]
		n.queue = n.queue[1:]
		filter := n.filter
		n.mu.Unlock()
		out := []packet{p}
		if filter != nil {
			out = filter(p)
		}
		for _, q := range out {
			if m := n.nodes[q.to]; m != nil {
				m.HandlePacket(q.from, q.b)
			}
		}
	}
	t.Fatal("network never went quiet")
}

// node is one simulated agent.
type node struct {
	priv Key
	pub  Key
	addr netip.AddrPort
	m    *Manager
	inst *installer
}

func newKey(t testing.TB) (priv, pub Key) {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	copy(priv[:], k.Bytes())
	copy(pub[:], k.PublicKey().Bytes())
	return priv, pub
}

const testRotate = 2 * time.Minute

// cluster is a set of nodes, each the peer of every other.
type cluster struct {
	t     testing.TB
	clk   *clock
	net   *network
	nodes []*node
	mode  Mode
}

func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	c := &cluster{t: t, clk: newClock(), net: newNetwork(), mode: ModeOn}
	for i := range n {
		priv, pub := newKey(t)
		nd := &node{priv: priv, pub: pub, addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, byte(i / 250), byte(i%250 + 1)}), DefaultPort)}
		c.nodes = append(c.nodes, nd)
		c.start(nd)
	}
	for _, nd := range c.nodes {
		c.setPeers(nd)
	}
	return c
}

// start (re)creates a node's manager: a restart loses all its state.
func (c *cluster) start(nd *node) {
	c.t.Helper()
	nd.inst = newInstaller()
	m, err := New(Config{Mode: c.mode, PrivateKey: nd.priv, Rotate: testRotate, Now: c.clk.Now},
		endpoint{n: c.net, self: nd.addr}, nd.inst)
	if err != nil {
		c.t.Fatal(err)
	}
	nd.m = m
	c.net.nodes[nd.addr] = m
}

func (c *cluster) setPeers(nd *node) {
	var ps []Peer
	for _, o := range c.nodes {
		if o != nd {
			ps = append(ps, Peer{Key: o.pub, Addr: o.addr, PQ: true, Active: true})
		}
	}
	nd.m.SetPeers(ps)
}

// step advances the clock by d, ticks every node and delivers everything.
func (c *cluster) step(d time.Duration) {
	c.clk.advance(d)
	for _, nd := range c.nodes {
		nd.m.Tick()
	}
	c.net.pump(c.t)
	for _, nd := range c.nodes {
		checkCounts(c.t, nd.m)
	}
}

// checkCounts: the lock-free state counts agree with the peers' states.
func checkCounts(t testing.TB, m *Manager) {
	t.Helper()
	want := map[State]int{}
	for _, s := range m.Status() {
		want[s.State]++
	}
	for s, n := range m.StateCounts() {
		if want[s] != n {
			t.Fatalf("StateCounts %v, the peers say %v", m.StateCounts(), want)
		}
	}
}

// run steps by one tick for d.
func (c *cluster) run(d time.Duration) {
	for e := time.Duration(0); e < d; e += TickInterval {
		c.step(TickInterval)
	}
}

func (c *cluster) status(a, b *node) PeerStatus {
	for _, s := range a.m.Status() {
		if s.Key == b.pub {
			return s
		}
	}
	c.t.Fatalf("no status for peer")
	return PeerStatus{}
}

// agree fails the test unless a and b hold the same non-zero PSK for each
// other and are both in state pq.
func (c *cluster) agree(a, b *node) Key {
	c.t.Helper()
	ka, oka := a.inst.get(b.pub)
	kb, okb := b.inst.get(a.pub)
	if !oka || !okb || ka != kb || ka == (Key{}) {
		c.t.Fatalf("no agreement: %x (set %v) vs %x (set %v)", ka[:4], oka, kb[:4], okb)
	}
	if sa, sb := c.status(a, b), c.status(b, a); sa.State != StatePQ || sb.State != StatePQ || sa.Epoch != sb.Epoch {
		c.t.Fatalf("states %s/%s epochs %d/%d, want pq with one epoch", sa.State, sb.State, sa.Epoch, sb.Epoch)
	}
	return ka
}

func mustAddr(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func mustHKDF(t testing.TB, secret []byte, info string) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
