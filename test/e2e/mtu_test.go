package e2e

import (
	"bytes"
	"crypto/rand"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/test/netcluster"
)

// TestMSSClampKeepsBulkTCPAliveInICMPBlackHole: pods at MTU 1500, underlay
// 1500, tunnel 1420, and every ICMP "fragmentation needed" dropped where the
// nodes would send it. A full-size segment can never enter the tunnel and
// the pod is never told, so only the MSS clamp in crosswire's forward chain
// lets a bulk transfer through.
func TestMSSClampKeepsBulkTCPAliveInICMPBlackHole(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1, DropPacketTooBig: true})
	a, b := e.c.Nodes[0], e.c.Nodes[1]
	src, dst := a.Pods[0], b.Pods[0]

	// The black hole is real: a full-size DF packet dies without a word.
	out, err := netcluster.Exec(src.NS, "ping", "-n", "-c", "2", "-W", "1", "-M", "do", "-s", "1472", dst.IP.String())
	if err == nil || strings.Contains(out, "Frag needed") || strings.Contains(out, "too long") {
		t.Fatalf("1500-byte DF ping through the tunnel: want silent loss, got %v: %s", err, out)
	}
	if got := blackHoleDrops(t, a); got == 0 {
		t.Fatalf("%s: black hole dropped no ICMP: the test proves nothing", a.Name)
	}

	before := map[string]uint64{a.Name: markCounters(t, a)[nft.CommentMSSClamp4], b.Name: markCounters(t, b)[nft.CommentMSSClamp4]}
	addr := netip.AddrPortFrom(dst.IP, 9100)
	netcluster.ServeTCP(t, dst.NS, addr)
	payload := make([]byte, 4<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	cp := e.c.StartCapture(t)
	start := time.Now()
	got, err := netcluster.DialTCP(src.NS, addr, payload, 20*time.Second)
	elapsed := time.Since(start)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("4 MiB echo %s -> %s: %d of %d bytes back after %v: %v", src.Name, dst.Name, len(got), len(payload), elapsed, err)
	}
	t.Logf("4 MiB each way through the tunnel in %v (%.1f Mbit/s of payload, both directions)",
		elapsed.Round(time.Millisecond), float64(2*len(payload)*8)/elapsed.Seconds()/1e6)
	stopEncrypted(t, cp, "the transfer")
	// Each side clamps the SYN it sends into the tunnel: the client's node
	// the SYN, the server's node the SYN-ACK.
	for _, n := range []*netcluster.Node{a, b} {
		after := markCounters(t, n)[nft.CommentMSSClamp4]
		t.Logf("%s: MSS clamp counter %d -> %d", n.Name, before[n.Name], after)
		if after <= before[n.Name] {
			t.Errorf("%s: MSS clamp counter did not move (%d -> %d)", n.Name, before[n.Name], after)
		}
	}
	if drops := blackHoleDrops(t, a); drops == 0 {
		t.Errorf("%s: no ICMP dropped", a.Name)
	}
}

// blackHoleDrops sums the packet counters of netcluster's ICMP black hole on
// a node.
func blackHoleDrops(t *testing.T, n *netcluster.Node) int {
	t.Helper()
	out := mustExec(t, n.NS, "nft", "list", "table", "inet", "pmtublackhole")
	total := 0
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "packets" && i+1 < len(f) {
			v, _ := strconv.Atoi(f[i+1])
			total += v
		}
	}
	return total
}

// TestPathMTUErrorReachesSender: traffic that TCP's clamp cannot help (ICMP
// here, UDP alike) learns the tunnel's MTU the standard way: the node refuses
// the packet with ICMP "fragmentation needed" (mtu 1440: a 1500 underlay
// minus WireGuard's IPv4 overhead, once the agent sized the tunnel from its
// peers' routes), which crosswire's rules let through, and the sender
// reports it instead of hanging.
func TestPathMTUErrorReachesSender(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1})
	src, dst := e.c.Nodes[0].Pods[0], e.c.Nodes[1].Pods[0]
	for _, n := range e.c.Nodes {
		eventually(t, 3*resync+2*time.Second, n.Name+" tunnel MTU", wantMTU(n, 1440))
	}

	out, err := netcluster.Exec(src.NS, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-M", "do", "-s", "1472", dst.IP.String())
	if err == nil {
		t.Fatalf("1500-byte DF ping through a 1440 tunnel succeeded: %s", out)
	}
	if !strings.Contains(out, "mtu = 1440") && !strings.Contains(out, "mtu=1440") {
		t.Fatalf("sender was not told the tunnel MTU: %s", out)
	}
	t.Logf("1500-byte DF ping: %s", lastLines(out, 3))
	// The largest packet that fits the tunnel, and a smaller one, pass.
	for _, size := range []string{"1412", "1300"} {
		if out, err := netcluster.Exec(src.NS, "ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", size, dst.IP.String()); err != nil {
			t.Errorf("%s-byte DF ping: %v: %s", size, err, out)
		}
	}
}

func lastLines(s string, n int) string {
	return strings.ReplaceAll(tail(s, n), "\n", " | ")
}
