package netcluster

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// netnsRunDir is where `ip netns` keeps the named namespaces.
const netnsRunDir = "/var/run/netns"

// build turns the layout into kernel state. It records each namespace as
// soon as it exists, so Close after a failure removes exactly what this run
// made and never a namespace of the same name that belonged to someone else.
func (c *Cluster) build() error {
	root, err := os.MkdirTemp("", c.Prefix+"-")
	if err != nil {
		return fmt.Errorf("temp root: %w", err)
	}
	c.mu.Lock()
	c.Root = root
	c.mu.Unlock()
	if err := c.addNamespaces(c.Underlay); err != nil {
		return err
	}
	if err := ipBatch(c.Underlay, underlayCommands()); err != nil {
		return fmt.Errorf("underlay: %w", err)
	}
	if c.DropPacketTooBig {
		if _, err := ExecInput(c.Underlay, []byte(dropPacketTooBigRules("bridge", "forward")), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("underlay ICMP black hole: %w", err)
		}
	}
	for _, n := range c.Nodes {
		if err := c.buildNode(n); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}

// addNamespaces creates namespaces, recording each for Close.
func (c *Cluster) addNamespaces(names ...string) error {
	for _, ns := range names {
		if _, err := run(nil, "ip", "netns", "add", ns); err != nil {
			return err
		}
		c.mu.Lock()
		c.created = append(c.created, ns)
		c.mu.Unlock()
		if c.PodStack.Has6() || c.UnderlayStack.Has6() {
			// Before any link exists, so no link-local address is ever
			// tentative: DAD would hold them back for a second or two.
			if _, err := Exec(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"); err != nil {
				return fmt.Errorf("%s: %w", ns, err)
			}
		}
	}
	return nil
}

// buildNode creates one node, its pods and its underlay port; build runs
// it for every node and AddNodes for nodes joining a running cluster.
func (c *Cluster) buildNode(n *Node) error {
	c.nodeDirs(n)
	for _, d := range []string{n.StateDir, n.SocketDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("node dir: %w", err)
		}
	}
	names := []string{n.NS}
	for _, p := range n.Pods {
		names = append(names, p.NS)
	}
	if err := c.addNamespaces(names...); err != nil {
		return err
	}
	// Both ends of each veth are created straight in their namespaces, so
	// nothing ever appears in the root namespace, where names could clash
	// with another run.
	if err := ipBatch("", c.vethCommands(n)); err != nil {
		return fmt.Errorf("veths: %w", err)
	}
	if err := ipBatch(c.Underlay, []string{
		fmt.Sprintf("link set n%d mtu %d", n.Index, c.UnderlayMTU),
		fmt.Sprintf("link set n%d master br0", n.Index),
		fmt.Sprintf("link set n%d up", n.Index),
	}); err != nil {
		return fmt.Errorf("underlay port: %w", err)
	}
	if err := ipBatch(n.NS, c.nodeCommands(n)); err != nil {
		return err
	}
	if _, err := Exec(n.NS, append([]string{"sysctl", "-q", "-w"}, c.nodeSysctls(n)...)...); err != nil {
		return fmt.Errorf("sysctls: %w", err)
	}
	if c.PodStack.Has4() && !c.NoPods { // the Service VIP is IPv4
		if _, err := ExecInput(n.NS, []byte(c.kubeProxyRules()), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("service rules: %w", err)
		}
	}
	if c.DropPacketTooBig {
		if _, err := ExecInput(n.NS, []byte(dropPacketTooBigRules("inet", "output", "forward")), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("ICMP black hole: %w", err)
		}
	}
	for _, p := range n.Pods {
		if err := ipBatch(p.NS, podCommands(p)); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
	}
	return nil
}

func (c *Cluster) vethCommands(n *Node) []string {
	cmds := []string{fmt.Sprintf("link add %s netns %s type veth peer name n%d netns %s",
		UnderlayDev, n.NS, n.Index, c.Underlay)}
	for _, p := range n.Pods {
		cmds = append(cmds, fmt.Sprintf("link add eth0 netns %s type veth peer name %s netns %s",
			p.NS, p.HostVeth, n.NS))
	}
	return cmds
}

func underlayCommands() []string {
	return []string{
		"link set lo up",
		"link add br0 type bridge",
		"link set br0 up",
	}
}

func (c *Cluster) nodeCommands(n *Node) []string {
	// nodad: duplicate address detection would hold IPv6 addresses back
	// for a second or two, and nothing here can be duplicated.
	cmds := []string{
		"link set lo up",
		fmt.Sprintf("link set %s mtu %d", UnderlayDev, c.UnderlayMTU),
	}
	for _, a := range n.UnderlayIPs() {
		cmds = append(cmds, fmt.Sprintf("addr add %s/%d dev %s nodad", a, underlayBits(a), UnderlayDev))
	}
	cmds = append(cmds, fmt.Sprintf("link set %s up", UnderlayDev))
	cmds = append(cmds, c.defaultRoutes()...)
	if c.NoPods {
		return cmds
	}
	cmds = append(cmds, fmt.Sprintf("link add %s type bridge", PodBridge))
	for i, a := range n.bridgeIPs() {
		cmds = append(cmds, fmt.Sprintf("addr add %s/%d dev %s nodad", a, n.PodCIDRs()[i].Bits(), PodBridge))
	}
	cmds = append(cmds, fmt.Sprintf("link set %s up", PodBridge))
	for _, p := range n.Pods {
		cmds = append(cmds,
			fmt.Sprintf("link set %s master %s", p.HostVeth, PodBridge),
			fmt.Sprintf("link set %s up", p.HostVeth))
	}
	// host-gw: without crosswire, pod traffic crosses the underlay in clear.
	for _, m := range c.Nodes {
		if m == n {
			continue
		}
		for _, p := range m.PodCIDRs() {
			cmds = append(cmds, hostGWRoute(p, m))
		}
	}
	return cmds
}

// defaultRoutes are a node's default routes. Real nodes have one; without
// it, node-originated traffic to the Service VIP fails routing before the
// output DNAT sees it. Nothing answers at the gateway and the underlay has
// no link out of its namespace, so nothing can leave the machine.
func (c *Cluster) defaultRoutes() []string {
	var cmds []string
	if c.UnderlayStack.Has4() {
		cmds = append(cmds, fmt.Sprintf("route add default via %s dev %s", c.underlayGateway(), UnderlayDev))
	}
	if c.UnderlayStack.Has6() {
		cmds = append(cmds, fmt.Sprintf("route add default via %s dev %s", underlayGateway6, UnderlayDev))
	}
	return cmds
}

// hostGWRoute routes a remote pod CIDR via its node's underlay address of
// the same family, or, for IPv4 pods on an IPv6-only underlay, via the
// node's IPv6 address (an IPv4 route with an IPv6 next hop).
func hostGWRoute(p netip.Prefix, m *Node) string {
	switch {
	case p.Addr().Is6():
		return fmt.Sprintf("route add %s via %s dev %s", p, m.UnderlayIP6, UnderlayDev)
	case m.UnderlayIP.Is4():
		return fmt.Sprintf("route add %s via %s dev %s", p, m.UnderlayIP, UnderlayDev)
	}
	return fmt.Sprintf("route add %s via inet6 %s dev %s", p, m.UnderlayIP6, UnderlayDev)
}

// dropPacketTooBigRules drops ICMP "fragmentation needed" and ICMPv6
// "packet too big" in the given hooks of a table of the given family.
func dropPacketTooBigRules(family string, hooks ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s pmtublackhole {\n", family)
	for _, h := range hooks {
		fmt.Fprintf(&b, "\tchain %s {\n\t\ttype filter hook %s priority 0; policy accept;\n", h, h)
		b.WriteString("\t\ticmp type destination-unreachable icmp code frag-needed counter drop\n")
		b.WriteString("\t\ticmpv6 type packet-too-big counter drop\n\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// nodeSysctls turns on forwarding and strict reverse-path filtering, which
// many distributions ship and which breaks naive tunnels: the effective
// value is the maximum of "all" and the interface's, so both are set.
func (c *Cluster) nodeSysctls(n *Node) []string {
	s := []string{"net.ipv4.ip_forward=1"}
	if c.PodStack.Has6() || c.UnderlayStack.Has6() {
		// IPv6 has no rp_filter; forwarding is all it needs.
		s = append(s, "net.ipv6.conf.all.forwarding=1")
	}
	ifaces := []string{"all", "default", "lo", UnderlayDev}
	if !c.NoPods {
		ifaces = append(ifaces, PodBridge)
	}
	for _, p := range n.Pods {
		ifaces = append(ifaces, p.HostVeth)
	}
	for _, i := range ifaces {
		s = append(s, fmt.Sprintf("net.ipv4.conf.%s.rp_filter=1", i))
	}
	return s
}

func podCommands(p *Pod) []string {
	cmds := []string{"link set lo up"}
	for i, a := range p.IPs() {
		cmds = append(cmds, fmt.Sprintf("addr add %s/%d dev eth0 nodad", a, p.Node.PodCIDRs()[i].Bits()))
	}
	cmds = append(cmds, "link set eth0 up")
	for _, gw := range p.Node.bridgeIPs() {
		cmds = append(cmds, fmt.Sprintf("route add default via %s dev eth0", gw))
	}
	return cmds
}

// kubeProxyRules mimics kube-proxy's ClusterIP DNAT, in prerouting for pods
// and in output for the node itself, at the priority kube-proxy uses (dstnat,
// -100; older nft knows the name only in prerouting), so crosswire's chain
// can be tested against a real Service rewrite.
func (c *Cluster) kubeProxyRules() string {
	vip, port := c.ServiceVIP.Addr(), c.ServiceVIP.Port()
	var rules strings.Builder
	for _, proto := range []string{"tcp", "udp"} {
		fmt.Fprintf(&rules, "\t\tip daddr %s %s dport %d dnat to %s:%d\n", vip, proto, port, c.Backend.IP, BackendPort)
	}
	return fmt.Sprintf(`table ip kubeproxy {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
%s	}
	chain output {
		type nat hook output priority -100; policy accept;
%s	}
}
`, rules.String(), rules.String())
}

// underlayGateway6 is the nodes' IPv6 default gateway, likewise unanswered.
var underlayGateway6 = netip.MustParseAddr("fd00:77::1")

// underlayGateway is the nodes' default gateway, an address no namespace
// holds (192.168.77.1).
func (c *Cluster) underlayGateway() netip.Addr {
	return netip.AddrFrom4([4]byte{192, 168, 77, 1})
}
