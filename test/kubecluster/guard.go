package kubecluster

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
)

// clusterNets are every prefix a test cluster uses: pods, Services and the
// underlay. The host's namespace must never route towards any of them.
var clusterNets = []netip.Prefix{
	netip.MustParsePrefix("10.244.0.0/16"),
	netip.MustParsePrefix("10.96.0.0/16"),
	netip.MustParsePrefix("192.168.77.0/24"),
	netip.MustParsePrefix("fd00:10:244::/48"),
	netip.MustParsePrefix("fd00:77::/64"),
}

// HostGuard proves the rule that comes first: nothing of a test cluster is
// linked to, or routed from, the host's network namespace, whose default
// route leaves the machine. It records the host's links when the cluster
// starts; Check fails on any link added since and on any route towards a
// cluster prefix.
type HostGuard struct {
	links  []string
	routes []netip.Prefix
}

// NewHostGuard records the host namespace's links. Call it from the host
// namespace (the test's own).
func NewHostGuard() (*HostGuard, error) {
	links, err := linkNames()
	if err != nil {
		return nil, err
	}
	routes, err := routeDsts()
	if err != nil {
		return nil, err
	}
	return &HostGuard{links: links, routes: routes}, nil
}

// Check returns an error naming every link added to the host's namespace
// since NewHostGuard, every host route inside a cluster prefix, and every
// route added since that overlaps one.
func (g *HostGuard) Check() error {
	links, err := linkNames()
	if err != nil {
		return err
	}
	routes, err := routeDsts()
	if err != nil {
		return err
	}
	if problems := guardProblems(g, links, routes); len(problems) > 0 {
		return fmt.Errorf("host guard: the host's namespace is linked to the test cluster: %v", problems)
	}
	return nil
}

// guardProblems compares the host now with the guard's snapshot. A route
// the host had before that merely covers a cluster prefix (a 10.0.0.0/8
// towards the host's own network) is the host's, not the cluster's; a
// default route likewise.
func guardProblems(g *HostGuard, links []string, routes []netip.Prefix) []string {
	var problems []string
	for _, l := range links {
		if !slices.Contains(g.links, l) {
			problems = append(problems, "new link "+l)
		}
	}
	for _, p := range routes {
		if p.Bits() == 0 {
			continue
		}
		isNew := !slices.Contains(g.routes, p)
		for _, c := range clusterNets {
			inside := p.Bits() >= c.Bits() && c.Contains(p.Addr())
			if inside || (isNew && p.Overlaps(c)) {
				problems = append(problems, fmt.Sprintf("host route %s overlaps cluster prefix %s", p, c))
			}
		}
	}
	return problems
}

// routeDsts lists the destinations of the host's routes in every table.
func routeDsts() ([]netip.Prefix, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("host guard: list routes: %w", err)
	}
	var dsts []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		dst, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		dsts = append(dsts, netip.PrefixFrom(dst.Unmap(), ones).Masked())
	}
	return dsts, nil
}

func linkNames() ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("host guard: list links: %w", err)
	}
	names := make([]string, 0, len(links))
	for _, l := range links {
		names = append(names, fmt.Sprintf("%s (%s)", l.Attrs().Name, l.Type()))
	}
	return names, nil
}
