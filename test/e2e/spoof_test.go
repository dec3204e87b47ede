package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/test/netcluster"
)

// No node can speak for another: node1 (a) puts packets claiming a pod
// source of node3 (c) towards a pod of node2 (b).
//
//   - A pod of a that takes c's pod address: a's reverse-path filter drops
//     it before anything else sees it (crosswire marks only local pod
//     sources for the tunnel, so the packet's way out would be the plain
//     route, where rp_filter=1 rejects the source).
//   - Whoever has the run of node a (root, or a host-network pod with
//     CAP_NET_RAW) writes the packets straight into a's tunnel device:
//     wireguard-go encrypts them to b (its lookup is by destination), and
//     b's wireguard-go drops them after decryption, as their source is not
//     in a's allowed IPs. Proof: the underlay carries them encrypted, b's
//     rx bytes from a rise, and counters on b's tunnel device and in the
//     target pod see none of them, while the same injection with a's own
//     pod address as source is delivered (so the method is sound).
func TestSpoofedSourceThroughTunnelIsDropped(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1})
	c := e.c
	na, nb, nc := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	podA, podB, spoofed := na.Pods[0], nb.Pods[0], nc.Pods[0].IP
	const count = 5

	probes := newSpoofProbes(t, nb, e.Iface(nb), podB, podA.IP, spoofed)

	t.Run("pod with a foreign source", func(t *testing.T) {
		mustExec(t, podA.NS, "ip", "addr", "add", spoofed.String()+"/32", "dev", "eth0")
		t.Cleanup(func() { _, _ = netcluster.Exec(podA.NS, "ip", "addr", "del", spoofed.String()+"/32", "dev", "eth0") })
		before := rpFilterDrops(t, na)
		out, err := netcluster.Exec(podA.NS, "ping", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", "-I", spoofed.String(), podB.IP.String())
		if err == nil {
			t.Errorf("spoofed ping got replies:\n%s", out)
		}
		drops := rpFilterDrops(t, na) - before
		t.Logf("%s: reverse-path filter drops +%d", na.Name, drops)
		if drops < count {
			t.Errorf("%s: reverse-path filter dropped %d, want >= %d", na.Name, drops, count)
		}
		probes.assertNone(t)
	})

	t.Run("injected into the tunnel", func(t *testing.T) {
		keyA := e.pubkey(na)
		rxBefore := e.wgPeers(t, nb)[keyA].RxBytes
		cp := c.StartCapture(t)
		if err := injectICMP(na.NS, e.Iface(na), spoofed, podB.IP, count); err != nil {
			t.Fatal(err)
		}
		// The injected packets are the only traffic now; wait until b has
		// received all of them (a keepalive-free tunnel: rx moves only
		// with them and the handshake, if one was due).
		eventually(t, 5*time.Second, "b to receive the injected packets from a", func() error {
			if got := e.wgPeers(t, nb)[keyA].RxBytes - rxBefore; got < count*96 {
				return fmt.Errorf("rx from a +%d bytes", got)
			}
			return nil
		})
		counts := stopEncrypted(t, cp, "spoofed packets injected into the tunnel")
		t.Logf("%s: rx from %s +%d bytes", nb.Name, na.Name, e.wgPeers(t, nb)[keyA].RxBytes-rxBefore)
		if counts.WireGuard < count {
			t.Errorf("underlay saw %d WireGuard packets, want >= %d", counts.WireGuard, count)
		}
		probes.assertNone(t)

		// Control: the same injection with a's own pod address arrives.
		if err := injectICMP(na.NS, e.Iface(na), podA.IP, podB.IP, count); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "the control packets to reach the target pod", func() error {
			if got := probes.read(t)["pod-legit"]; got < count {
				return fmt.Errorf("pod counter %d", got)
			}
			return nil
		})
		got := probes.read(t)
		t.Logf("%s probes after the control: %v", nb.Name, got)
		if got["tun-legit"] < count {
			t.Errorf("control: %d on %s's tunnel device, want >= %d", got["tun-legit"], nb.Name, count)
		}
		probes.assertNone(t)
	})
}

// TestStrictDropsSpoofedPlaintext: with --strict, plaintext on the
// underlay that claims a remote pod's source (node3's, sent by node1) is
// dropped at node2 and counted by the strict ingress rule, and none of it
// reaches the target pod.
func TestStrictDropsSpoofedPlaintext(t *testing.T) {
	e := newEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 1}, "--strict")
	c := e.c
	na, nb, nc := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	podB, spoofed := nb.Pods[0], nc.Pods[0].IP
	const count = 5

	probes := newSpoofProbes(t, nb, e.Iface(nb), podB, na.Pods[0].IP, spoofed)
	// Node a sends from c's pod address: node-originated traffic is never
	// marked, so it takes the plain route over the underlay.
	mustExec(t, na.NS, "ip", "addr", "add", spoofed.String()+"/32", "dev", "lo")
	t.Cleanup(func() { _, _ = netcluster.Exec(na.NS, "ip", "addr", "del", spoofed.String()+"/32", "dev", "lo") })

	before := markCounters(t, nb)[nft.CommentStrictIngress4]
	cp := c.StartCapture(t)
	out, err := netcluster.Exec(na.NS, "ping", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", "-I", spoofed.String(), podB.IP.String())
	if err == nil {
		t.Errorf("spoofed plaintext got replies:\n%s", out)
	}
	counts, err := cp.Stop()
	if err != nil {
		t.Fatal(err)
	}
	dropped := markCounters(t, nb)[nft.CommentStrictIngress4] - before
	t.Logf("underlay: %s; %s strict ingress drops +%d", counts, nb.Name, dropped)
	if counts.Plaintext < count {
		t.Errorf("the spoofed plaintext did not cross the underlay (%s): the test proves nothing", counts)
	}
	if dropped < count {
		t.Errorf("%s: strict ingress counter rose by %d, want >= %d", nb.Name, dropped, count)
	}
	probes.assertNone(t)

	// Real pod traffic between the strict nodes still flows, encrypted.
	cp = c.StartCapture(t)
	if err := na.Pods[0].Ping(podB.IP, 3); err != nil {
		t.Errorf("pod a -> pod b: %v", err)
	}
	stopEncrypted(t, cp, "pod traffic between strict nodes")
}

// spoofProbes are nft counters on the receiving node's tunnel device and
// in the target pod, for packets from the spoofed source and, as a
// control, for echo requests from the sender's own pod.
type spoofProbes struct {
	node, pod string // namespaces
}

const spoofProbeTable = "spoofprobe"

func newSpoofProbes(t *testing.T, n *netcluster.Node, tunnel string, pod *netcluster.Pod, legit, spoofed netip.Addr) *spoofProbes {
	t.Helper()
	p := &spoofProbes{node: n.NS, pod: pod.NS}
	rules := func(iif, prefix string) string {
		return fmt.Sprintf(`table inet %[1]s {
	chain pre {
		type filter hook prerouting priority -400; policy accept;
		%[2]s ip saddr %[3]s counter comment "%[5]s-spoofed"
		%[2]s ip saddr %[4]s ip daddr %[6]s icmp type echo-request counter comment "%[5]s-legit"
	}
}
`, spoofProbeTable, iif, spoofed, legit, prefix, pod.IP)
	}
	for ns, body := range map[string]string{p.node: rules(`iifname "`+tunnel+`"`, "tun"), p.pod: rules("", "pod")} {
		if out, err := netcluster.ExecInput(ns, []byte(body), "nft", "-f", "-"); err != nil {
			t.Fatalf("nft probes in %s: %v\n%s", ns, err, out)
		}
		t.Cleanup(func() { _, _ = netcluster.Exec(ns, "nft", "delete", "table", "inet", spoofProbeTable) })
	}
	return p
}

var probeCounter = regexp.MustCompile(`counter packets (\d+) bytes \d+ comment "([a-z-]+)"`)

// read returns the probe counters by comment: tun-spoofed, tun-legit,
// pod-spoofed, pod-legit.
func (p *spoofProbes) read(t *testing.T) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, ns := range []string{p.node, p.pod} {
		for _, m := range probeCounter.FindAllStringSubmatch(mustExec(t, ns, "nft", "list", "table", "inet", spoofProbeTable), -1) {
			v, _ := strconv.ParseUint(m[1], 10, 64)
			out[m[2]] = v
		}
	}
	if len(out) != 4 {
		t.Fatalf("probe counters: %v", out)
	}
	return out
}

// assertNone fails unless no packet from the spoofed source came out of
// the tunnel or reached the pod.
func (p *spoofProbes) assertNone(t *testing.T) {
	t.Helper()
	got := p.read(t)
	if got["tun-spoofed"] != 0 || got["pod-spoofed"] != 0 {
		t.Errorf("spoofed packets delivered: %d out of the tunnel device, %d into the target pod", got["tun-spoofed"], got["pod-spoofed"])
	}
}

// rpFilterDrops reads the node's count of packets its reverse-path filter
// dropped (TcpExt IPReversePathFilter in /proc/net/netstat, per
// namespace).
func rpFilterDrops(t *testing.T, n *netcluster.Node) uint64 {
	t.Helper()
	lines := strings.Split(mustExec(t, n.NS, "cat", "/proc/net/netstat"), "\n")
	for i := 0; i+1 < len(lines); i++ {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != "TcpExt:" || len(vals) != len(keys) {
			continue
		}
		for j, k := range keys {
			if k == "IPReversePathFilter" {
				v, _ := strconv.ParseUint(vals[j], 10, 64)
				return v
			}
		}
	}
	t.Fatalf("%s: no TcpExt IPReversePathFilter in /proc/net/netstat", n.Name)
	return 0
}

// injectICMP writes count ICMP echo requests src -> dst straight onto
// device dev in namespace ns through a packet socket: no routing, no
// marking, no reverse-path check. On a tunnel device this is what anyone
// with the run of the node can put into its tunnel.
func injectICMP(ns, dev string, src, dst netip.Addr, count int) error {
	return netcluster.Do(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		proto := htons(syscall.ETH_P_IP)
		fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, int(proto))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer syscall.Close(fd)
		to := &syscall.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}
		for seq := range count {
			if err := syscall.Sendto(fd, icmpEcho(src, dst, uint16(seq)), 0, to); err != nil {
				return fmt.Errorf("inject on %s: %w", dev, err)
			}
		}
		return nil
	})
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// icmpEcho is an IPv4 ICMP echo request with a 56-byte payload.
func icmpEcho(src, dst netip.Addr, seq uint16) []byte {
	const ipLen, icmpLen = 20, 8 + 56
	pkt := make([]byte, ipLen+icmpLen)
	pkt[0], pkt[8], pkt[9] = 0x45, 64, syscall.IPPROTO_ICMP
	binary.BigEndian.PutUint16(pkt[2:], ipLen+icmpLen)
	s, d := src.As4(), dst.As4()
	copy(pkt[12:], s[:])
	copy(pkt[16:], d[:])
	binary.BigEndian.PutUint16(pkt[10:], checksum(pkt[:ipLen]))
	icmp := pkt[ipLen:]
	icmp[0] = 8 // echo request
	binary.BigEndian.PutUint16(icmp[4:], 0xc0de)
	binary.BigEndian.PutUint16(icmp[6:], seq)
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return pkt
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
