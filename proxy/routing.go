package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol tags every route crosswire installs (`ip route show table
// T` prints it as "proto 0xcc" or the name in /etc/iproute2/rt_protos), so
// cleanup and drift repair touch crosswire's routes and nothing else.
const RouteProtocol netlink.RouteProtocol = 0xcc

// Metrics of the two routes per remote pod CIDR. The tunnel route wins; the
// blackhole behind it takes over when the tunnel device disappears (the
// agent died), so marked packets are dropped instead of falling through to
// the main table and leaving in clear.
const (
	tunnelMetric    = 0
	blackholeMetric = 4096
)

// NetlinkRouter programs the policy rule and crosswire's routing table.
type NetlinkRouter struct {
	h   *netlink.Handle
	cfg Config
}

// NewNetlinkRouter uses h (nil: the current network namespace).
func NewNetlinkRouter(cfg Config, h *netlink.Handle) *NetlinkRouter {
	if h == nil {
		h = &netlink.Handle{}
	}
	return &NetlinkRouter{h: h, cfg: cfg}
}

func (r *NetlinkRouter) rule(family int) *netlink.Rule {
	rule := netlink.NewRule()
	rule.Family = family
	rule.Priority = r.cfg.RulePriority
	rule.Table = r.cfg.Table
	rule.Mark = r.cfg.Mark
	mask := r.cfg.Mask
	rule.Mask = &mask
	return rule
}

// EnsureRule installs `fwmark Mark/Mask lookup Table` for both families
// and removes rules to our table that do not match the configuration (left
// by an agent with other flags).
func (r *NetlinkRouter) EnsureRule() (bool, error) {
	added := false
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := r.h.RuleListFiltered(fam, &netlink.Rule{Table: r.cfg.Table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			if fam == netlink.FAMILY_V6 && errors.Is(err, unix.EAFNOSUPPORT) {
				continue
			}
			return added, fmt.Errorf("list rules (family %d): %w", fam, err)
		}
		found := false
		for _, ru := range rules {
			if r.matches(ru) {
				found = true
				continue
			}
			stale := ru
			if err := r.h.RuleDel(&stale); err != nil && !errors.Is(err, unix.ENOENT) {
				return added, fmt.Errorf("delete stale rule %s: %w", ru, err)
			}
		}
		if found {
			continue
		}
		if err := r.h.RuleAdd(r.rule(fam)); err != nil {
			if fam == netlink.FAMILY_V6 && errors.Is(err, unix.EAFNOSUPPORT) {
				continue
			}
			return added, fmt.Errorf("add rule fwmark %#x/%#x lookup %d (family %d): %w",
				r.cfg.Mark, r.cfg.Mask, r.cfg.Table, fam, err)
		}
		added = true
	}
	return added, nil
}

func (r *NetlinkRouter) matches(ru netlink.Rule) bool {
	return ru.Priority == r.cfg.RulePriority && ru.Table == r.cfg.Table &&
		ru.Mark == r.cfg.Mark && ru.Mask != nil && *ru.Mask == r.cfg.Mask &&
		ru.Src == nil && ru.Dst == nil && ru.IifName == "" && ru.OifName == "" && !ru.Invert
}

func (r *NetlinkRouter) ours() ([]netlink.Route, error) {
	var out []netlink.Route
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := r.h.RouteListFiltered(fam,
			&netlink.Route{Table: r.cfg.Table, Protocol: RouteProtocol},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			if fam == netlink.FAMILY_V6 && errors.Is(err, unix.EAFNOSUPPORT) {
				continue
			}
			return nil, fmt.Errorf("list routes in table %d: %w", r.cfg.Table, err)
		}
		out = append(out, routes...)
	}
	return out, nil
}

// Routes reports which remote prefixes have both routes in place.
func (r *NetlinkRouter) Routes() (complete, any []netip.Prefix, err error) {
	routes, err := r.ours()
	if err != nil {
		return nil, nil, err
	}
	link, _ := r.h.LinkByName(r.cfg.TunnelIface)
	tunnel := map[netip.Prefix]bool{}
	blackhole := map[netip.Prefix]bool{}
	for _, rt := range routes {
		p, ok := routePrefix(rt)
		if !ok {
			continue
		}
		any = append(any, p)
		switch {
		case rt.Type == unix.RTN_BLACKHOLE:
			blackhole[p] = true
		case link != nil && rt.LinkIndex == link.Attrs().Index:
			tunnel[p] = true
		}
	}
	for p := range tunnel {
		if blackhole[p] {
			complete = append(complete, p)
		}
	}
	return sortPrefixes(complete), sortPrefixes(any), nil
}

func routePrefix(rt netlink.Route) (netip.Prefix, bool) {
	if rt.Dst == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(rt.Dst.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := rt.Dst.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits).Masked(), true
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// AddRoutes installs, for each prefix, the fail-closed blackhole first and
// then the tunnel route; both are replaced in place, so it is idempotent.
func (r *NetlinkRouter) AddRoutes(ps []netip.Prefix) error {
	if len(ps) == 0 {
		return nil
	}
	link, err := r.h.LinkByName(r.cfg.TunnelIface)
	if err != nil {
		return fmt.Errorf("tunnel device %s: %w", r.cfg.TunnelIface, err)
	}
	for _, p := range ps {
		if err := r.h.RouteReplace(r.blackhole(p)); err != nil {
			return fmt.Errorf("add blackhole route %s table %d: %w", p, r.cfg.Table, err)
		}
		if err := r.h.RouteReplace(r.tunnel(p, link.Attrs().Index)); err != nil {
			return fmt.Errorf("add route %s dev %s table %d: %w", p, r.cfg.TunnelIface, r.cfg.Table, err)
		}
	}
	return nil
}

func (r *NetlinkRouter) blackhole(p netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Dst: ipNet(p), Table: r.cfg.Table, Type: unix.RTN_BLACKHOLE,
		Protocol: RouteProtocol, Priority: blackholeMetric, Family: family(p),
	}
}

func (r *NetlinkRouter) tunnel(p netip.Prefix, index int) *netlink.Route {
	return &netlink.Route{
		Dst: ipNet(p), Table: r.cfg.Table, LinkIndex: index, Scope: netlink.SCOPE_LINK,
		Protocol: RouteProtocol, Priority: tunnelMetric, Family: family(p),
	}
}

func family(p netip.Prefix) int {
	if p.Addr().Is4() {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// DelRoutes removes the tunnel route first, then the blackhole, so the
// prefix is never routed into the tunnel without its fail-closed backstop.
// Each route is deleted by its exact key (table, prefix, metric, protocol,
// type, scope) rather than found in a dump of the table: at 5000 nodes the
// table holds 10 000 routes, and a Node event must not list them all. A
// route someone else added under the same prefix differs in protocol or
// metric and is left alone.
func (r *NetlinkRouter) DelRoutes(ps []netip.Prefix) error {
	for _, p := range ps {
		for _, rt := range []*netlink.Route{r.tunnel(p, 0), r.blackhole(p)} {
			if err := r.h.RouteDel(rt); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("delete route %s table %d: %w", p, r.cfg.Table, err)
			}
		}
	}
	return nil
}

// DeleteAll removes crosswire's rules and every route it tagged.
func (r *NetlinkRouter) DeleteAll() error {
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := r.h.RuleListFiltered(fam, &netlink.Rule{Table: r.cfg.Table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			if !errors.Is(err, unix.EAFNOSUPPORT) {
				errs = append(errs, fmt.Errorf("list rules: %w", err))
			}
			continue
		}
		for _, ru := range rules {
			if !r.matches(ru) {
				continue
			}
			ru := ru
			if err := r.h.RuleDel(&ru); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete rule %s: %w", ru, err))
			}
		}
	}
	routes, err := r.ours()
	if err != nil {
		errs = append(errs, err)
	}
	for _, rt := range routes {
		rt := rt
		if err := r.h.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", rt.Dst, err))
		}
	}
	return errors.Join(errs...)
}
