package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// GuardSuffix names the guard table after crosswire's table:
// "crosswire" has its guard in "crosswire-guard".
const GuardSuffix = "-guard"

// ChainGuard is the guard table's one chain.
const ChainGuard = "guard"

// Comments of the guard table's rules (and its counters).
const (
	CommentGuard4        = "crosswire: guard: drop local pod -> remote pod (IPv4) leaving by a device other than the tunnel"
	CommentGuard6        = "crosswire: guard: drop local pod -> remote pod (IPv6) leaving by a device other than the tunnel"
	CommentGuardCluster4 = "crosswire: guard: strict: drop local pod -> non-local cluster address (IPv4) not leaving by the tunnel"
	CommentGuardCluster6 = "crosswire: guard: strict: drop local pod -> non-local cluster address (IPv6) not leaving by the tunnel"
)

// Names of the guard table's sets of cluster ranges (Config.ClusterCIDRs).
const (
	SetCluster4 = "cluster4"
	SetCluster6 = "cluster6"
)

// GuardTable is the name of the guard table for cfg.
func (c Config) GuardTable() string { return c.withDefaults().Table + GuardSuffix }

// RenderGuard describes the guard table: copies of the four sets and one
// forward chain that drops pod traffic between a local and a remote pod
// CIDR unless it leaves by the tunnel:
//
//	meta nfproto ipv4 ip saddr @local4 ip daddr @remote4 oifname != "<tunnel>" counter drop
//
// The marking rules, the mark-based leak guard and the policy routing that
// keep such traffic in the tunnel all live in crosswire's table or depend
// on it: flush or delete that table, and pod packets are no longer marked
// and follow the main routing table onto the underlay in clear. This table
// depends on neither marks nor routing, only on addresses and the output
// device, and it is a separate table, so `nft flush table inet crosswire`
// or `nft delete table inet crosswire` leaves it in force: the traffic is
// dropped until the agent repairs its table. Either table alone keeps the
// datapath closed; only removing both (`nft flush ruleset`) opens a window,
// until the agent's next resync.
//
// Decrypted traffic from the tunnel has a remote source and is never
// matched; the tunnel's own UDP is node traffic (output hook, node
// addresses). The chain runs at the filter priority of the forward hook,
// after any DNAT, so a Service packet is judged by its backend's address.
func RenderGuard(cfg Config, st State) (*Ruleset, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	sets, err := podSets(st, "crosswire guard")
	if err != nil {
		return nil, err
	}
	rs := &Ruleset{
		Table:  &nftables.Table{Name: cfg.GuardTable(), Family: nftables.TableFamilyINet},
		Sets:   sets,
		Chains: []ChainSpec{guardChain(cfg)},
	}
	if strictCluster(cfg) {
		cluster4, cluster6, err := normalize(cfg.ClusterCIDRs)
		if err != nil {
			return nil, fmt.Errorf("cluster CIDRs: %w", err)
		}
		rs.Sets = append(rs.Sets,
			addrSet(SetCluster4, "crosswire guard: the cluster's IPv4 pod ranges (strict)", nftables.TypeIPAddr, cluster4),
			addrSet(SetCluster6, "crosswire guard: the cluster's IPv6 pod ranges (strict)", nftables.TypeIP6Addr, cluster6))
	}
	if err := rs.check(); err != nil {
		return nil, err
	}
	return rs, nil
}

func strictCluster(cfg Config) bool { return cfg.Strict && len(cfg.ClusterCIDRs) > 0 }

func guardChain(cfg Config) ChainSpec {
	notTunnel := ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, cfg.TunnelIface)
	c := ChainSpec{
		Name:     ChainGuard,
		Type:     nftables.ChainTypeFilter,
		Hook:     *nftables.ChainHookForward,
		Priority: *nftables.ChainPriorityFilter,
		Policy:   nftables.ChainPolicyAccept,
		Rules: []RuleSpec{
			{
				Comment: CommentGuard4,
				Exprs:   concat(matchNfproto(unix.NFPROTO_IPV4), lookupAddr(ipv4Saddr, SetLocal4), lookupAddr(ipv4Daddr, SetRemote4), notTunnel, counterAndDrop()),
			},
			{
				Comment: CommentGuard6,
				Exprs:   concat(matchNfproto(unix.NFPROTO_IPV6), lookupAddr(ipv6Saddr, SetLocal6), lookupAddr(ipv6Daddr, SetRemote6), notTunnel, counterAndDrop()),
			},
		},
	}
	if strictCluster(cfg) {
		// Strict: a Node this agent has not applied yet is in no set, so
		// its pods would be reached in clear; anything in the cluster's
		// ranges but this node's own must leave by the tunnel:
		//   ip saddr @local4 ip daddr @cluster4 ip daddr != @local4 oifname != "<tunnel>" counter drop
		c.Rules = append(c.Rules,
			RuleSpec{
				Comment: CommentGuardCluster4,
				Exprs:   concat(matchNfproto(unix.NFPROTO_IPV4), lookupAddr(ipv4Saddr, SetLocal4), lookupAddr(ipv4Daddr, SetCluster4), lookupAddrNot(ipv4Daddr, SetLocal4), notTunnel, counterAndDrop()),
			},
			RuleSpec{
				Comment: CommentGuardCluster6,
				Exprs:   concat(matchNfproto(unix.NFPROTO_IPV6), lookupAddr(ipv6Saddr, SetLocal6), lookupAddr(ipv6Daddr, SetCluster6), lookupAddrNot(ipv6Daddr, SetLocal6), notTunnel, counterAndDrop()),
			})
	}
	return c
}

// lookupAddrNot is lookupAddr negated: the address is not in set.
func lookupAddrNot(f addrField, set string) []expr.Any {
	e := lookupAddr(f, set)
	e[1].(*expr.Lookup).Invert = true
	return e
}

// renderAll is what the Manager programs: crosswire's table, then its
// guard.
func renderAll(cfg Config, st State) ([]*Ruleset, error) {
	main, err := Render(cfg, st)
	if err != nil {
		return nil, err
	}
	guard, err := RenderGuard(cfg, st)
	if err != nil {
		return nil, err
	}
	return []*Ruleset{main, guard}, nil
}
