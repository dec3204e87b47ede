package netcluster

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
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
	for _, n := range c.Nodes {
		n.StateDir = filepath.Join(root, n.Name, "state")
		n.SocketDir = filepath.Join(root, n.Name, "run")
		for _, d := range []string{n.StateDir, n.SocketDir} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return fmt.Errorf("node dir: %w", err)
			}
		}
	}

	for _, ns := range c.Namespaces() {
		if _, err := run(nil, "ip", "netns", "add", ns); err != nil {
			return err
		}
		c.mu.Lock()
		c.created = append(c.created, ns)
		c.mu.Unlock()
	}
	// Both ends of each veth are created straight in their namespaces, so
	// nothing ever appears in the root namespace, where names could clash
	// with another run.
	if err := ipBatch("", c.vethCommands()); err != nil {
		return fmt.Errorf("veths: %w", err)
	}
	if err := ipBatch(c.Underlay, c.underlayCommands()); err != nil {
		return fmt.Errorf("underlay: %w", err)
	}
	for _, n := range c.Nodes {
		if err := ipBatch(n.NS, c.nodeCommands(n)); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		if _, err := Exec(n.NS, append([]string{"sysctl", "-q", "-w"}, nodeSysctls(n)...)...); err != nil {
			return fmt.Errorf("%s sysctls: %w", n.Name, err)
		}
		if _, err := ExecInput(n.NS, []byte(c.kubeProxyRules()), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("%s service rules: %w", n.Name, err)
		}
		for _, p := range n.Pods {
			if err := ipBatch(p.NS, podCommands(p)); err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
		}
	}
	return nil
}

func (c *Cluster) vethCommands() []string {
	var cmds []string
	for _, n := range c.Nodes {
		cmds = append(cmds, fmt.Sprintf("link add %s netns %s type veth peer name n%d netns %s",
			UnderlayDev, n.NS, n.Index, c.Underlay))
		for _, p := range n.Pods {
			cmds = append(cmds, fmt.Sprintf("link add eth0 netns %s type veth peer name %s netns %s",
				p.NS, p.HostVeth, n.NS))
		}
	}
	return cmds
}

func (c *Cluster) underlayCommands() []string {
	cmds := []string{
		"link set lo up",
		"link add br0 type bridge",
		"link set br0 up",
	}
	for _, n := range c.Nodes {
		cmds = append(cmds,
			fmt.Sprintf("link set n%d master br0", n.Index),
			fmt.Sprintf("link set n%d up", n.Index))
	}
	return cmds
}

func (c *Cluster) nodeCommands(n *Node) []string {
	cmds := []string{
		"link set lo up",
		fmt.Sprintf("addr add %s/24 dev %s", n.UnderlayIP, UnderlayDev),
		fmt.Sprintf("link set %s up", UnderlayDev),
		fmt.Sprintf("link add %s type bridge", PodBridge),
		fmt.Sprintf("addr add %s/%d dev %s", n.BridgeIP, n.PodCIDR.Bits(), PodBridge),
		fmt.Sprintf("link set %s up", PodBridge),
	}
	for _, p := range n.Pods {
		cmds = append(cmds,
			fmt.Sprintf("link set %s master %s", p.HostVeth, PodBridge),
			fmt.Sprintf("link set %s up", p.HostVeth))
	}
	// Real nodes have a default route; without one, node-originated traffic
	// to the Service VIP fails routing before the output DNAT sees it.
	// Nothing answers at .1, so nothing else changes.
	cmds = append(cmds, fmt.Sprintf("route add default via %s dev %s", c.underlayGateway(), UnderlayDev))
	// host-gw: without crosswire, pod traffic crosses the underlay in clear.
	for _, m := range c.Nodes {
		if m != n {
			cmds = append(cmds, fmt.Sprintf("route add %s via %s dev %s", m.PodCIDR, m.UnderlayIP, UnderlayDev))
		}
	}
	return cmds
}

// nodeSysctls turns on forwarding and strict reverse-path filtering, which
// many distributions ship and which breaks naive tunnels: the effective
// value is the maximum of "all" and the interface's, so both are set.
func nodeSysctls(n *Node) []string {
	s := []string{"net.ipv4.ip_forward=1"}
	ifaces := []string{"all", "default", "lo", UnderlayDev, PodBridge}
	for _, p := range n.Pods {
		ifaces = append(ifaces, p.HostVeth)
	}
	for _, i := range ifaces {
		s = append(s, fmt.Sprintf("net.ipv4.conf.%s.rp_filter=1", i))
	}
	return s
}

func podCommands(p *Pod) []string {
	return []string{
		"link set lo up",
		fmt.Sprintf("addr add %s/%d dev eth0", p.IP, p.Node.PodCIDR.Bits()),
		"link set eth0 up",
		fmt.Sprintf("route add default via %s dev eth0", p.Node.BridgeIP),
	}
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

// underlayGateway is the nodes' default gateway, an address no namespace
// holds (192.168.77.1).
func (c *Cluster) underlayGateway() netip.Addr {
	return netip.AddrFrom4([4]byte{192, 168, 77, 1})
}
