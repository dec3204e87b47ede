package wgtun

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"

	"github.com/crosswire/crosswire/internal/testenv"
)

// testNet is two network namespaces joined by a veth, underlay
// 192.168.99.1/24 (a) and 192.168.99.2/24 (b), with a per-run random name.
type testNet struct {
	a, b string // namespace names
}

func requirePrivileged(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "creates network namespaces and TUN devices")
	testenv.RequireFile(t, "/dev/net/tun", "load the tun module (modprobe tun)")
	testenv.RequireTools(t, "ip", "ping", "nft", "wg", "unshare", "mount")
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func newTestNet(t *testing.T) *testNet {
	prefix := "cwwg-" + randHex(t, 4)
	n := &testNet{a: prefix + "-a", b: prefix + "-b"}
	for _, ns := range []string{n.a, n.b} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("delete netns %s: %v\n%s", ns, err, out)
			}
		})
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", "name", "va", "netns", n.a, "type", "veth", "peer", "name", "vb", "netns", n.b)
	run(t, "ip", "-n", n.a, "addr", "add", "192.168.99.1/24", "dev", "va")
	run(t, "ip", "-n", n.b, "addr", "add", "192.168.99.2/24", "dev", "vb")
	run(t, "ip", "-n", n.a, "link", "set", "va", "up")
	run(t, "ip", "-n", n.b, "link", "set", "vb", "up")
	return n
}

// inNS runs fn on an OS thread switched into namespace ns. The thread is never
// unlocked, so Go discards it afterwards instead of reusing it elsewhere.
func inNS(t *testing.T, ns string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromName(ns)
		if err != nil {
			errc <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- err
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("enter netns %s: %v", ns, err)
	}
}

func nsHandle(t *testing.T, ns string) *netlink.Handle {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	return nl
}

func testLogger() *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	l, err := cfg.Build()
	if err != nil {
		panic(err)
	}
	return l
}

func openIn(t *testing.T, ns string, cfg Config) *Device {
	t.Helper()
	var d *Device
	var err error
	inNS(t, ns, func() { d, err = Open(cfg) })
	if err != nil {
		t.Fatalf("Open in %s: %v", ns, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// addTunnelAddr gives the device local/32 and a route to remote/32 through it.
func addTunnelAddr(t *testing.T, nl *netlink.Handle, name, local, remote string) {
	t.Helper()
	link, err := nl.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr(local + "/32")
	if err := nl.AddrAdd(link, addr); err != nil {
		t.Fatalf("addr add %s: %v", local, err)
	}
	_, dst, _ := netParseCIDR(remote + "/32")
	if err := nl.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst}); err != nil {
		t.Fatalf("route add %s: %v", remote, err)
	}
}

func ping(ns, dst string) error {
	out, err := exec.Command("ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %v\n%s", dst, ns, err, out)
	}
	return nil
}

var counterRE = regexp.MustCompile(`packets (\d+) bytes`)

func nftCounter(t *testing.T, ns, name string) int {
	t.Helper()
	out := run(t, "ip", "netns", "exec", ns, "nft", "list", "counter", "inet", "cwwgtest", name)
	m := counterRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no packet count in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// wgShowDump runs `wg show <name> dump` against a socket in sockDir, which must
// be <base>/wireguard: in a private mount namespace <base> is bind-mounted on
// /run, where wg looks for /run/wireguard/<name>.sock. Nothing on the host
// changes.
func wgShowDump(t *testing.T, sockDir, name string) string {
	t.Helper()
	if filepath.Base(sockDir) != "wireguard" {
		t.Fatalf("socket dir %s must end in /wireguard", sockDir)
	}
	script := fmt.Sprintf("mount --bind %s /run && wg show %s dump", filepath.Dir(sockDir), name)
	return run(t, "unshare", "-m", "--propagation", "private", "sh", "-c", script)
}

func peerIPs(t *testing.T, d *Device) map[Key][]string {
	t.Helper()
	stats, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	m := map[Key][]string{}
	for _, p := range stats {
		var ips []string
		for _, pfx := range p.AllowedIPs {
			ips = append(ips, pfx.String())
		}
		m[p.PublicKey] = ips
	}
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDeviceTwoNamespaces(t *testing.T) {
	requirePrivileged(t)
	n := newTestNet(t)
	nlA, nlB := nsHandle(t, n.a), nsHandle(t, n.b)
	name := "cw" + randHex(t, 3)
	const mark = 0x2000

	// Count the tunnel's outgoing UDP in a by mark, so the test fails if
	// SO_MARK is missing.
	nftRules := `table inet cwwgtest {
	counter marked {}
	counter unmarked {}
	chain out {
		type filter hook output priority 0;
		udp dport 51820 meta mark 0x2000 counter name marked
		udp dport 51820 meta mark != 0x2000 counter name unmarked
	}
}`
	cmd := exec.Command("ip", "netns", "exec", n.a, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nftRules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}

	keyA, _ := GeneratePrivateKey()
	keyB, _ := GeneratePrivateKey()
	sockA := filepath.Join(t.TempDir(), "wireguard")
	sockB := filepath.Join(t.TempDir(), "wireguard")
	cfgA := Config{Name: name, MTU: 1420, ListenPort: 51820, FwMark: mark, PrivateKey: keyA, SocketDir: sockA, Logger: testLogger()}
	cfgB := Config{Name: name, MTU: 1420, ListenPort: 51820, PrivateKey: keyB, SocketDir: sockB, Logger: testLogger()}
	devA := openIn(t, n.a, cfgA)
	devB := openIn(t, n.b, cfgB)

	if devA.Name() != name || devA.PublicKey() != keyA.PublicKey() || devA.ListenPort() != 51820 {
		t.Fatalf("accessors: %s %s %d", devA.Name(), devA.PublicKey(), devA.ListenPort())
	}
	// The interface lives in its namespace, up, with the MTU asked for.
	link, err := nlA.LinkByName(name)
	if err != nil {
		t.Fatalf("TUN not in namespace a: %v", err)
	}
	if link.Attrs().MTU != 1420 || link.Attrs().Flags&(1<<0) == 0 { // net.FlagUp
		t.Fatalf("link %s: mtu %d flags %v", name, link.Attrs().MTU, link.Attrs().Flags)
	}
	if _, err := netlink.LinkByName(name); err == nil {
		t.Fatalf("TUN %s leaked into the test's own namespace", name)
	}
	// The UAPI socket is private.
	sockPathA := filepath.Join(sockA, name+".sock")
	fi, err := os.Stat(sockPathA)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("UAPI socket mode %v, want socket 0600", fi.Mode())
	}

	addTunnelAddr(t, nlA, name, "10.99.0.1", "10.99.0.2")
	addTunnelAddr(t, nlB, name, "10.99.0.2", "10.99.0.1")

	peerB := Peer{PublicKey: keyB.PublicKey(), Endpoint: netip.MustParseAddrPort("192.168.99.2:51820"),
		AllowedIPs: pfxs("10.99.0.2/32", "10.98.2.0/24", "10.97.2.0/24")}
	peerA := Peer{PublicKey: keyA.PublicKey(), Endpoint: netip.MustParseAddrPort("192.168.99.1:51820"),
		AllowedIPs: pfxs("10.99.0.1/32")}
	// SetPeers, Stats and friends run on ordinary goroutines on purpose: only
	// Open needs the namespace.
	setsBefore := devA.ipcSets.Load()
	if err := devA.SetPeers([]Peer{peerB}); err != nil {
		t.Fatal(err)
	}
	if err := devB.SetPeers([]Peer{peerA}); err != nil {
		t.Fatal(err)
	}
	if got := devA.ipcSets.Load() - setsBefore; got != 1 {
		t.Fatalf("SetPeers issued %d UAPI sets, want 1", got)
	}

	if err := ping(n.a, "10.99.0.2"); err != nil {
		t.Fatal(err)
	}

	stats, err := devA.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].PublicKey != peerB.PublicKey {
		t.Fatalf("stats: %+v", stats)
	}
	s := stats[0]
	if s.LastHandshake.IsZero() || time.Since(s.LastHandshake) > time.Minute || s.RxBytes == 0 || s.TxBytes == 0 {
		t.Fatalf("no traffic in stats: handshake %v rx %d tx %d", s.LastHandshake, s.RxBytes, s.TxBytes)
	}
	if s.Endpoint != peerB.Endpoint {
		t.Fatalf("endpoint %v, want %v", s.Endpoint, peerB.Endpoint)
	}

	if got := nftCounter(t, n.a, "marked"); got == 0 {
		t.Fatal("no tunnel UDP packets carried fwmark 0x2000")
	}
	if got := nftCounter(t, n.a, "unmarked"); got != 0 {
		t.Fatalf("%d tunnel UDP packets left without fwmark", got)
	}

	// A link flap must leave the tunnel working, with its UDP sockets where
	// they were. Stock wireguard-go closes them on a detected "down" and
	// re-opens them from its event goroutine, in whatever namespace that
	// thread is in (here: the test's own). On some kernels it never detects
	// the down (TUN writes fail with EINVAL, not EIO); the event filter itself
	// is covered by TestNSTUNDropsUpDownEvents.
	run(t, "ip", "-n", n.a, "link", "set", name, "down")
	time.Sleep(1500 * time.Millisecond) // wireguard-go polls link state every second
	run(t, "ip", "-n", n.a, "link", "set", name, "up")
	time.Sleep(1500 * time.Millisecond)
	run(t, "ip", "-n", n.a, "route", "replace", "10.99.0.2/32", "dev", name) // the kernel dropped it on down
	if out := run(t, "ss", "-Huan", "sport", "= :51820"); strings.TrimSpace(out) != "" {
		t.Fatalf("tunnel UDP socket in the test's own namespace after a link flap:\n%s", out)
	}
	if err := ping(n.a, "10.99.0.2"); err != nil {
		t.Fatalf("after link flap: %v", err)
	}

	// wg(8) sees the device through the socket, keys in base64.
	dump := strings.Split(strings.TrimSpace(wgShowDump(t, sockA, name)), "\n")
	if len(dump) != 2 {
		t.Fatalf("wg show dump: %q", dump)
	}
	hdr, peerLine := strings.Fields(dump[0]), strings.Fields(dump[1])
	if hdr[1] != keyA.PublicKey().String() || hdr[2] != "51820" || hdr[3] != "0x2000" {
		t.Fatalf("wg show interface line: %q", dump[0])
	}
	gotIPs := strings.Split(peerLine[3], ",")
	slices.Sort(gotIPs)
	if peerLine[0] != peerB.PublicKey.String() || peerLine[2] != "192.168.99.2:51820" ||
		!slices.Equal(gotIPs, []string{"10.97.2.0/24", "10.98.2.0/24", "10.99.0.2/32"}) {
		t.Fatalf("wg show peer line: %q", dump[1])
	}

	// The same desired state writes nothing.
	setsBefore = devA.ipcSets.Load()
	if err := devA.SetPeers([]Peer{peerB}); err != nil {
		t.Fatal(err)
	}
	if got := devA.ipcSets.Load() - setsBefore; got != 0 {
		t.Fatalf("unchanged SetPeers issued %d UAPI sets", got)
	}

	// Dropping one allowed IP keeps the others, and the tunnel.
	peerB.AllowedIPs = pfxs("10.99.0.2/32", "10.97.2.0/24")
	if err := devA.SetPeers([]Peer{peerB}); err != nil {
		t.Fatal(err)
	}
	if got := peerIPs(t, devA)[peerB.PublicKey]; !slices.Equal(got, []string{"10.97.2.0/24", "10.99.0.2/32"}) {
		t.Fatalf("allowed IPs after removing one: %v", got)
	}
	if err := ping(n.a, "10.99.0.2"); err != nil {
		t.Fatal(err)
	}

	// Restart b: its old interface and socket go away, the new device has no
	// session, and InitiateHandshakes gets one without any traffic.
	sockPathB := filepath.Join(sockB, name+".sock")
	if err := devB.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sockPathB); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket after Close: %v", err)
	}
	waitFor(t, "interface removal in b", func() bool {
		_, err := nlB.LinkByName(name)
		return errors.As(err, new(netlink.LinkNotFoundError))
	})
	hsA := peerStats(t, devA, peerB.PublicKey).LastHandshake
	devB = openIn(t, n.b, cfgB)
	addTunnelAddr(t, nlB, name, "10.99.0.2", "10.99.0.1")
	if err := devB.SetPeers([]Peer{peerA}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if hs := peerStats(t, devB, peerA.PublicKey).LastHandshake; !hs.IsZero() {
		t.Fatalf("restarted device handshook before InitiateHandshakes (%v): test cannot tell", hs)
	}
	devB.InitiateHandshakes()
	waitFor(t, "handshake after InitiateHandshakes", func() bool {
		return !peerStats(t, devB, peerA.PublicKey).LastHandshake.IsZero()
	})
	// a, the responder, records the handshake only when b's first packet
	// on the new session (the keepalive b sends on the response) arrives,
	// which can be after b recorded its own: wait for it too.
	waitFor(t, "a's handshake time after the pre-restart one", func() bool {
		return peerStats(t, devA, peerB.PublicKey).LastHandshake.After(hsA)
	})
	if err := ping(n.b, "10.99.0.1"); err != nil {
		t.Fatal(err)
	}

	// Removing the peer removes it, and traffic stops.
	if err := devA.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	if got := peerIPs(t, devA); len(got) != 0 {
		t.Fatalf("peers after removal: %v", got)
	}
	if err := ping(n.a, "10.99.0.2"); err == nil {
		t.Fatal("ping through the tunnel still works without a peer")
	}

	// Close removes the socket file and the interface.
	if err := devA.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sockPathA); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket after Close: %v", err)
	}
	waitFor(t, "interface removal in a", func() bool {
		_, err := nlA.LinkByName(name)
		return errors.As(err, new(netlink.LinkNotFoundError))
	})
}

func peerStats(t *testing.T, d *Device, k Key) PeerStats {
	t.Helper()
	stats, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if s.PublicKey == k {
			return s
		}
	}
	t.Fatalf("peer %s not on %s", k, d.Name())
	return PeerStats{}
}

func netParseCIDR(s string) (netip.Prefix, *net.IPNet, error) {
	p := netip.MustParsePrefix(s)
	return p, &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, nil
}
