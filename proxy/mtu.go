package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// WireGuard's per-packet overhead on the underlay: outer IP header, UDP
// header (8), WireGuard data header (16) and Poly1305 tag (16).
const (
	WireGuardOverhead4 = 20 + 8 + 16 + 16 // 60
	WireGuardOverhead6 = 40 + 8 + 16 + 16 // 80
)

// MinMTU6 is the smallest MTU an IPv6 link may have (RFC 8200); a tunnel
// that carries IPv6 pod traffic must not go below it.
const MinMTU6 = 1280

// minMTU4 is the IPv4 minimum every host must accept (RFC 791).
const minMTU4 = 576

// TunnelMTU is the tunnel MTU that fits the underlay: the underlay MTU minus
// WireGuard's overhead for the endpoints' family (the larger one if any
// endpoint is IPv6). A tunnel that carries IPv6 never goes below 1280: the
// outer packets are then fragmented by the sending node, which is slower
// but correct, where a smaller MTU would break IPv6 outright.
func TunnelMTU(underlayMTU int, ipv6Endpoints, ipv6Pods bool) (int, error) {
	overhead := WireGuardOverhead4
	if ipv6Endpoints {
		overhead = WireGuardOverhead6
	}
	mtu := underlayMTU - overhead
	floor := minMTU4
	if ipv6Pods {
		floor = MinMTU6
	}
	if underlayMTU <= 0 {
		return 0, fmt.Errorf("underlay MTU %d is not positive", underlayMTU)
	}
	return min(max(mtu, floor), 65535), nil
}

// UnderlayMTU is the smallest MTU of the routes this node would use to send
// to endpoints: for each, the route's own MTU metric if set, else its
// output device's MTU. Without endpoints (no peers yet) it uses the default
// route's device, IPv4 first, so a first guess is ready before any peer is.
func UnderlayMTU(h *netlink.Handle, endpoints []netip.Addr) (int, error) {
	if h == nil {
		h = &netlink.Handle{}
	}
	if len(endpoints) == 0 {
		return defaultRouteMTU(h)
	}
	lowest := 0
	for _, ep := range endpoints {
		routes, err := h.RouteGet(net.IP(ep.Unmap().AsSlice()))
		if err != nil {
			return 0, fmt.Errorf("route to endpoint %s: %w", ep, err)
		}
		if len(routes) == 0 {
			return 0, fmt.Errorf("route to endpoint %s: none", ep)
		}
		mtu, err := routeMTU(h, routes[0])
		if err != nil {
			return 0, fmt.Errorf("route to endpoint %s: %w", ep, err)
		}
		if lowest == 0 || mtu < lowest {
			lowest = mtu
		}
	}
	return lowest, nil
}

func defaultRouteMTU(h *netlink.Handle) (int, error) {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: 254}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return 0, fmt.Errorf("list main routes: %w", err)
		}
		for _, rt := range routes {
			if rt.Dst == nil || rt.Dst.IP.IsUnspecified() && isZeroMask(rt.Dst.Mask) {
				return routeMTU(h, rt)
			}
		}
	}
	return 0, errors.New("no endpoints and no default route: underlay MTU unknown")
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

func routeMTU(h *netlink.Handle, rt netlink.Route) (int, error) {
	if rt.MTU > 0 {
		return rt.MTU, nil
	}
	link, err := h.LinkByIndex(rt.LinkIndex)
	if err != nil {
		return 0, fmt.Errorf("device %d: %w", rt.LinkIndex, err)
	}
	return link.Attrs().MTU, nil
}
