package controller

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// ParseNode extracts and validates crosswire's view of a Node, validated on
// its own: a zero PublicKey means the node has published no key yet, an
// invalid Endpoint that its tunnel's address is unknown. defaultPort is
// used with the InternalIP when the node publishes no endpoint. Every error
// names the offending field so it can be shown in an Event, and carries its
// ReasonGroup for Build.
func ParseNode(n *corev1.Node, defaultPort uint16) (proxy.Peer, error) {
	info, err := parseNodeCIDRs(n)
	if err != nil {
		return info, err
	}
	key, err := nodeKey(n)
	if err != nil {
		return info, err
	}
	info.PublicKey = key
	ep, err := nodeEndpoint(n, defaultPort)
	if err != nil {
		return info, err
	}
	info.Endpoint = ep
	return info, nil
}

// parseNodeCIDRs checks the node's name and annotation sizes and returns its
// pod CIDRs: the part of ParseNode that decides what the node claims.
func parseNodeCIDRs(n *corev1.Node) (proxy.Peer, error) {
	info := proxy.Peer{Name: n.Name}
	if n.Name == "" {
		return info, inGroup(GroupOther, fmt.Errorf("node has no name"))
	}
	// Sorted, so that a node with several oversize annotations is always
	// reported with the same one.
	var keys []string
	for k := range n.Annotations {
		if strings.HasPrefix(k, "crosswire.dev/") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if v := n.Annotations[k]; len(v) > maxAnnotationBytes {
			return info, inGroup(annotationGroup(k), fmt.Errorf("annotation %s: %d bytes, limit %d", k, len(v), maxAnnotationBytes))
		}
	}
	cidrs, err := nodePodCIDRs(n)
	if err != nil {
		return info, inGroup(GroupCIDR, err)
	}
	info.PodCIDRs = cidrs
	info.PQPort = nodePQPort(n)
	return info, nil
}

// nodePQPort is the node's published key-exchange port; 0 when absent or
// not a port. A bad value only withholds post-quantum from the pair
// (classical WireGuard, or no traffic with --post-quantum=required, both
// shown in the status); it never rejects the node.
func nodePQPort(n *corev1.Node) uint16 {
	v, err := strconv.ParseUint(strings.TrimSpace(n.Annotations[AnnotationPQPort]), 10, 16)
	if err != nil {
		return 0
	}
	return uint16(v)
}

// nodeKey returns the node's public key, zero when it has none.
func nodeKey(n *corev1.Node) (wgtun.Key, error) {
	s := n.Annotations[AnnotationPublicKey]
	if strings.TrimSpace(s) == "" {
		return wgtun.Key{}, nil
	}
	key, err := parseKey(s)
	if err != nil {
		return wgtun.Key{}, inGroup(GroupKey, fmt.Errorf("annotation %s: %w", AnnotationPublicKey, err))
	}
	return key, nil
}

// parseKey checks that s is a base64 Curve25519 key and returns it: the
// one place a peer's key is parsed, so two spellings of one key are the
// same key from here to the WireGuard device. It accepts what an operator
// may paste (surrounding space, line breaks, non-canonical padding bits),
// unlike wgtun.ParseKey, which reads wg(8)'s exact form.
func parseKey(s string) (wgtun.Key, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return wgtun.Key{}, fmt.Errorf("not base64: %w", err)
	}
	if len(raw) != len(wgtun.Key{}) {
		return wgtun.Key{}, fmt.Errorf("key is %d bytes, want 32", len(raw))
	}
	k := wgtun.Key(raw)
	if k.IsZero() {
		return wgtun.Key{}, fmt.Errorf("key is all zeros")
	}
	return k, nil
}

func nodeEndpoint(n *corev1.Node, defaultPort uint16) (netip.AddrPort, error) {
	ep, err := nodeEndpointAddr(n, defaultPort)
	return ep, inGroup(GroupEndpoint, err)
}

func nodeEndpointAddr(n *corev1.Node, defaultPort uint16) (netip.AddrPort, error) {
	for _, ann := range []string{AnnotationEndpointOverride, AnnotationEndpoint} {
		s, ok := n.Annotations[ann]
		if !ok || strings.TrimSpace(s) == "" {
			continue
		}
		var ep netip.AddrPort
		var err error
		if ann == AnnotationEndpointOverride {
			ep, err = parseOverride(strings.TrimSpace(s), defaultPort)
		} else if ep, err = netip.ParseAddrPort(strings.TrimSpace(s)); err == nil {
			ep, err = checkEndpoint(ep)
		}
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("annotation %s: %w", ann, err)
		}
		return ep, nil
	}
	return internalIPEndpoint(n, defaultPort)
}

// internalIPEndpoint is the node's first InternalIP with port, invalid when
// it has none: the endpoint of a node that publishes none, both as its
// peers read it and as it publishes itself (SelfEndpoint).
func internalIPEndpoint(n *corev1.Node, port uint16) (netip.AddrPort, error) {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("status.addresses InternalIP %q: %w", a.Address, err)
		}
		ep, err := checkEndpoint(netip.AddrPortFrom(ip, port))
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("status.addresses InternalIP: %w", err)
		}
		return ep, nil
	}
	return netip.AddrPort{}, nil
}

// parseOverride parses an endpoint-override annotation: an ip:port, or a
// bare address that takes port (the cluster's WireGuard port), so that an
// operator need only name the address peers must use.
func parseOverride(s string, port uint16) (netip.AddrPort, error) {
	ep, err := netip.ParseAddrPort(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.AddrPort{}, err
		}
		ep = netip.AddrPortFrom(a, port)
	}
	return checkEndpoint(ep)
}

// checkEndpoint returns ep with an IPv4-mapped address unmapped, or an error
// when peers could not send to it. The checks run on the unmapped address:
// ::ffff:0.0.0.0 is not IsUnspecified, but 0.0.0.0 is. A zone names an
// interface of the publishing node and means nothing to its peers.
func checkEndpoint(ep netip.AddrPort) (netip.AddrPort, error) {
	a := ep.Addr()
	switch {
	case a.Zone() != "":
		return netip.AddrPort{}, fmt.Errorf("endpoint %s: zoned address is local to the node", ep)
	case ep.Port() == 0:
		return netip.AddrPort{}, fmt.Errorf("endpoint %s: port 0", ep)
	}
	a = a.Unmap()
	switch {
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a.IsLinkLocalUnicast(),
		a.Is4() && a.As4()[0] == 0, a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.AddrPort{}, fmt.Errorf("endpoint %s: not a unicast node address", ep)
	}
	return netip.AddrPortFrom(a, ep.Port()), nil
}
