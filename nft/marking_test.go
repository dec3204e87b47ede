package nft

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestMarkingInKernel sends real packets through a node namespace and checks
// what crosswire's prerouting chain did to their mark, as seen by a probe
// chain that runs after it (priority filter). A mangle-priority chain sets
// a foreign bit (0x4000) and crosswire's other mask bit (0x2000) first, so
// the test also proves (mark & ^Mask) | Mark in the kernel: 0x6000 -> 0x5000.
//
//	pod ns (10.244.1.10) --veth-- node ns (10.244.1.1, table crosswire)
//	tun ns (192.0.2.2) --veth named crosswire0-- node ns (192.0.2.1)
func TestMarkingInKernel(t *testing.T) {
	node, pod, tun := newNS(t), newNS(t), newNS(t)
	// No IPv6 chatter (router solicitations, MLD) to blur exact counts.
	for _, ns := range []*testNS{node, pod, tun} {
		ns.run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	node.run(t, "ip", "link", "set", "lo", "up")
	node.run(t, "ip", "link", "add", "vn", "type", "veth", "peer", "name", "vp", "netns", pod.name)
	node.run(t, "ip", "addr", "add", "10.244.1.1/24", "dev", "vn")
	node.run(t, "ip", "link", "set", "vn", "up")
	pod.run(t, "ip", "addr", "add", "10.244.1.10/24", "dev", "vp")
	pod.run(t, "ip", "link", "set", "vp", "up")
	pod.run(t, "ip", "route", "add", "default", "via", "10.244.1.1")
	node.run(t, "ip", "link", "add", "crosswire0", "type", "veth", "peer", "name", "tp", "netns", tun.name)
	node.run(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "crosswire0")
	node.run(t, "ip", "link", "set", "crosswire0", "up")
	tun.run(t, "ip", "addr", "add", "192.0.2.2/24", "dev", "tp")
	tun.run(t, "ip", "link", "set", "tp", "up")

	node.nft(t, "add table ip probe")
	node.nft(t, "add chain ip probe mangle { type filter hook prerouting priority mangle; }")
	node.nft(t, "add rule ip probe mangle ip saddr 10.244.1.10 meta mark set 0x6000")
	node.nft(t, "add chain ip probe after { type filter hook prerouting priority filter; }")
	node.nft(t, `add rule ip probe after ip protocol icmp meta mark 0x5000 counter comment "pod-marked"`)
	node.nft(t, `add rule ip probe after ip protocol icmp meta mark 0x6000 counter comment "pod-unmarked"`)
	node.nft(t, `add rule ip probe after ip protocol icmp iifname "crosswire0" meta mark 0x1000 counter comment "tunnel-marked"`)

	m := newTestManager(t, node)
	if err := m.Apply(State{Local: pfx("10.244.1.0/24"), Remote: pfx("10.244.2.0/24")}); err != nil {
		t.Fatal(err)
	}

	ping := func(ns *testNS, dst string) {
		// The remote destination has no route in the node: no reply is
		// expected, prerouting has seen the packet by then.
		_, _ = ns.try("ping", "-c", "1", "-W", "1", dst)
	}
	ping(pod, "10.244.2.10") // local pod -> remote pod: marked
	ping(pod, "10.244.1.1")  // local pod -> local address: not marked
	ping(tun, "192.0.2.1")   // out of the tunnel: marked

	c, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if got := c[CommentEgress4].Packets; got != 1 {
		t.Errorf("egress4 rule counted %d packets, want 1 (only the remote-bound one)", got)
	}
	if got := c[CommentTunnelIngress].Packets; got != 1 {
		t.Errorf("tunnel rule counted %d packets, want 1", got)
	}
	if c[CommentEgress4].Bytes == 0 {
		t.Errorf("egress4 counted no bytes: %+v", c[CommentEgress4])
	}
	probe := probeCounters(t, node)
	for name, want := range map[string]uint64{"pod-marked": 1, "pod-unmarked": 1, "tunnel-marked": 1} {
		if probe[name] != want {
			t.Errorf("probe %s = %d packets, want %d (all probes: %v)", name, probe[name], want, probe)
		}
	}
}

var probeRE = regexp.MustCompile(`counter packets ([0-9]+) bytes [0-9]+ comment "([^"]+)"`)

func probeCounters(t *testing.T, ns *testNS) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, line := range strings.Split(ns.nft(t, "list chain ip probe after"), "\n") {
		if m := probeRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			out[m[2]] = n
		}
	}
	return out
}
