package nft

import "testing"

// forwardLab is a node that forwards between a local pod, the underlay
// and a device named like the tunnel, each a veth into a namespace of its
// own, IPv4 only:
//
//	pod ns (10.244.1.10) --veth-- node ns (10.244.1.1)
//	under ns (10.244.2.10) --veth eth0-- node ns
//	tun ns (10.244.2.11) --veth named crosswire0-- node ns
//
// The node has no policy routing: marked packets follow the main table,
// as after another program deleted crosswire's rule. A probe table (ip
// probe, chain seen) counts ICMP forwarded to the pod by input device.
type forwardLab struct {
	node, pod, under, tun *testNS
}

func newForwardLab(t *testing.T) *forwardLab {
	t.Helper()
	node, pod, under, tun := newNS(t), newNS(t), newNS(t), newNS(t)
	for _, ns := range []*testNS{node, pod, under, tun} {
		ns.run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	node.run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	node.run(t, "ip", "link", "set", "lo", "up")
	link := func(dev, peer string, peerNS *testNS, nodeAddr, peerAddr string) {
		node.run(t, "ip", "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", peerNS.name)
		node.run(t, "ip", "link", "set", dev, "up")
		if nodeAddr != "" {
			node.run(t, "ip", "addr", "add", nodeAddr, "dev", dev)
		}
		peerNS.run(t, "ip", "addr", "add", peerAddr, "dev", peer)
		peerNS.run(t, "ip", "link", "set", peer, "up")
		// Linux answers ARP for any of its addresses on any link.
		peerNS.run(t, "ip", "route", "add", "default", "via", "10.244.1.1", "dev", peer, "onlink")
	}
	link("vn", "vp", pod, "10.244.1.1/24", "10.244.1.10/24")
	link("eth0", "ue", under, "", "10.244.2.10/32")
	link("crosswire0", "tp", tun, "", "10.244.2.11/32")
	node.run(t, "ip", "route", "add", "10.244.2.10/32", "dev", "eth0")
	node.run(t, "ip", "route", "add", "10.244.2.11/32", "dev", "crosswire0")
	node.nft(t, "add table ip probe")
	node.nft(t, "add chain ip probe seen { type filter hook forward priority filter; }")
	node.nft(t, `add rule ip probe seen ip protocol icmp ip daddr 10.244.1.10 iifname "eth0" counter comment "from-underlay"`)
	node.nft(t, `add rule ip probe seen ip protocol icmp ip daddr 10.244.1.10 iifname "crosswire0" counter comment "from-tunnel"`)
	return &forwardLab{node: node, pod: pod, under: under, tun: tun}
}
