package netcluster

import (
	"fmt"
	"net/netip"
)

// Stack is the set of IP families a network uses.
type Stack int

// The zero value is IPv4, so clusters without dual-stack options keep their
// IPv4-only shape.
const (
	IPv4 Stack = iota
	DualStack
	IPv6
)

func (s Stack) String() string {
	switch s {
	case IPv4:
		return "ipv4"
	case DualStack:
		return "dual-stack"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("Stack(%d)", int(s))
}

// Has4 and Has6 report whether the stack carries that family.
func (s Stack) Has4() bool { return s == IPv4 || s == DualStack }
func (s Stack) Has6() bool { return s == IPv6 || s == DualStack }

func (s Stack) valid() bool { return s >= IPv4 && s <= IPv6 }

// IPv6 addressing, mirroring the IPv4 plan: node i's pods live in
// fd00:10:244:<i>::/64 (pod k at ::<9+k>, the bridge at ::1), its underlay
// address is fd00:77::<10+i>/64.
func podCIDR6(i int) netip.Prefix {
	return netip.PrefixFrom(addr6([8]uint16{0xfd00, 0x10, 0x244, uint16(i)}), 64)
}

func hostIn6(p netip.Prefix, host int) netip.Addr {
	b := p.Addr().As16()
	b[14], b[15] = byte(host>>8), byte(host)
	return netip.AddrFrom16(b)
}

func underlayIP6(i int) netip.Addr {
	return addr6([8]uint16{0xfd00, 0x77, 0, 0, 0, 0, 0, uint16(underlayBase + i)})
}

func addr6(g [8]uint16) netip.Addr {
	var b [16]byte
	for i, v := range g {
		b[2*i], b[2*i+1] = byte(v>>8), byte(v)
	}
	return netip.AddrFrom16(b)
}

// underlayBits is the prefix length of the underlay subnets (one broadcast
// domain, br0).
func underlayBits(a netip.Addr) int {
	if a.Is4() {
		return 24
	}
	return 64
}

// PodCIDRs returns the node's pod CIDRs, primary family first (the order of
// a Node's spec.podCIDRs).
func (n *Node) PodCIDRs() []netip.Prefix {
	out := []netip.Prefix{n.PodCIDR}
	if n.PodCIDR6.IsValid() && n.PodCIDR6 != n.PodCIDR {
		out = append(out, n.PodCIDR6)
	}
	return out
}

// UnderlayIPs returns the node's underlay addresses, primary first.
func (n *Node) UnderlayIPs() []netip.Addr {
	out := []netip.Addr{n.UnderlayIP}
	if n.UnderlayIP6.IsValid() && n.UnderlayIP6 != n.UnderlayIP {
		out = append(out, n.UnderlayIP6)
	}
	return out
}

// bridgeIPs returns the addresses of cbr0, in the order of PodCIDRs.
func (n *Node) bridgeIPs() []netip.Addr {
	out := []netip.Addr{n.BridgeIP}
	if n.BridgeIP6.IsValid() && n.BridgeIP6 != n.BridgeIP {
		out = append(out, n.BridgeIP6)
	}
	return out
}

// IPs returns the pod's addresses, primary first.
func (p *Pod) IPs() []netip.Addr {
	out := []netip.Addr{p.IP}
	if p.IP6.IsValid() && p.IP6 != p.IP {
		out = append(out, p.IP6)
	}
	return out
}
