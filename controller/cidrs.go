package controller

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// nodePodCIDRs returns the node's pod CIDRs: the override annotation when
// set, else spec.podCIDRs, else the legacy spec.podCIDR.
func nodePodCIDRs(n *corev1.Node) ([]netip.Prefix, error) {
	var raw []string
	source := "spec.podCIDRs"
	switch {
	case strings.TrimSpace(n.Annotations[AnnotationPodCIDRs]) != "":
		source = "annotation " + AnnotationPodCIDRs
		raw = strings.Split(n.Annotations[AnnotationPodCIDRs], ",")
	case len(n.Spec.PodCIDRs) > 0:
		raw = n.Spec.PodCIDRs
	case n.Spec.PodCIDR != "":
		source = "spec.podCIDR"
		raw = []string{n.Spec.PodCIDR}
	}
	if len(raw) > maxPodCIDRsPerNode {
		return nil, fmt.Errorf("%s: %d CIDRs, limit %d", source, len(raw), maxPodCIDRsPerNode)
	}
	out := make([]netip.Prefix, 0, len(raw))
	for _, s := range raw {
		p, err := ParsePodCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, netip.Prefix.Compare)
	return slices.Compact(out), nil
}

// ParsePodCIDR parses one pod CIDR and refuses the ones that would capture
// far more than a node's pods: a /0 or anything shorter than /8 (IPv4) or
// /32 (IPv6) would steer unrelated traffic into the tunnel.
func ParsePodCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("CIDR %q: %w", s, err)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("CIDR %q: IPv4-mapped IPv6 is not a pod CIDR", s)
	}
	minBits := 8
	if p.Addr().Is6() {
		minBits = 32
	}
	if p.Bits() < minBits {
		return netip.Prefix{}, fmt.Errorf("CIDR %q: prefix shorter than /%d", s, minBits)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("CIDR %q: host bits set (did you mean %s?)", s, p.Masked())
	}
	a := p.Addr()
	if a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast() || a.IsUnspecified() {
		return netip.Prefix{}, fmt.Errorf("CIDR %q: not a unicast pod range", s)
	}
	// The address checks above only look at the first address; a short
	// IPv4 prefix such as 169.0.0.0/8 starts at an ordinary address but
	// still covers link-local (cloud metadata) or broadcast space.
	for _, r := range reservedRanges {
		if p.Overlaps(r) {
			return netip.Prefix{}, fmt.Errorf("CIDR %q: overlaps reserved range %s", s, r)
		}
	}
	return p, nil
}

// reservedRanges may never be (part of) a pod CIDR. The IPv6 ones are all
// caught by the address checks given the /32 minimum; IPv4 needs these.
var reservedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("127.0.0.0/8"),        // loopback
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local, cloud metadata
	netip.MustParsePrefix("224.0.0.0/4"),        // multicast
	netip.MustParsePrefix("255.255.255.255/32"), // limited broadcast
}
