package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Names of the objects in crosswire's table. Exported so that operators'
// tooling and other packages' tests can refer to them.
const (
	SetLocal4       = "local4"
	SetLocal6       = "local6"
	SetRemote4      = "remote4"
	SetRemote6      = "remote6"
	ChainPrerouting = "prerouting"
	ChainForward    = "forward"
)

// Rule comments double as stable rule identities: Drift matches rules by
// them and Counters keys by them. Keep them below 128 bytes (nft's limit).
const (
	CommentTunnelIngress  = "crosswire: mark decrypted packets from the tunnel so strict rp_filter (src_valid_mark) finds the tunnel route"
	CommentEgress4        = "crosswire: local pod -> remote pod (IPv4): route into the WireGuard tunnel"
	CommentEgress6        = "crosswire: local pod -> remote pod (IPv6): route into the WireGuard tunnel"
	CommentStrictIngress4 = "crosswire: strict: drop remote pod -> local pod (IPv4) that did not come through the tunnel (sent in clear)"
	CommentStrictIngress6 = "crosswire: strict: drop remote pod -> local pod (IPv6) that did not come through the tunnel (sent in clear)"
	CommentMSSClamp4      = "crosswire: clamp the MSS of TCP SYNs entering the tunnel to its route MTU (IPv4)"
	CommentMSSClamp6      = "crosswire: clamp the MSS of TCP SYNs entering the tunnel to its route MTU (IPv6)"
)

// PriorityPrerouting is dstnat+10: after kube-proxy's Service DNAT (dstnat),
// so a packet DNATed to a remote backend is judged by its real destination.
const PriorityPrerouting nftables.ChainPriority = -90

const maxCommentLen = 127

// Ruleset is the complete description of crosswire's table. Apply programs
// exactly this; Drift compares the kernel against it.
type Ruleset struct {
	Table  *nftables.Table
	Sets   []SetSpec   // created before the chains that refer to them
	Chains []ChainSpec // in creation order
}

// SetSpec is one named interval set of addresses.
type SetSpec struct {
	Name     string
	Comment  string
	KeyType  nftables.SetDatatype // TypeIPAddr or TypeIP6Addr
	Prefixes []netip.Prefix       // normalised: masked, sorted, no overlaps
	Elements []nftables.SetElement
}

// ChainSpec is one base chain and its rules, in order.
type ChainSpec struct {
	Name     string
	Type     nftables.ChainType
	Hook     nftables.ChainHook
	Priority nftables.ChainPriority
	Policy   nftables.ChainPolicy
	Rules    []RuleSpec
}

// RuleSpec is one rule. Comment is its identity and must be unique in the
// table. Exprs refer to sets by name only; Apply fills in batch set IDs.
type RuleSpec struct {
	Comment string
	Exprs   []expr.Any
}

// Set returns the set spec with the given name, or nil.
func (rs *Ruleset) Set(name string) *SetSpec {
	for i := range rs.Sets {
		if rs.Sets[i].Name == name {
			return &rs.Sets[i]
		}
	}
	return nil
}

// Chain returns the chain spec with the given name, or nil.
func (rs *Ruleset) Chain(name string) *ChainSpec {
	for i := range rs.Chains {
		if rs.Chains[i].Name == name {
			return &rs.Chains[i]
		}
	}
	return nil
}

// Render describes the table for cfg and st. It is pure: no netlink, no
// global state, the same input always gives the same output.
func Render(cfg Config, st State) (*Ruleset, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	sets, err := podSets(st, "crosswire")
	if err != nil {
		return nil, err
	}
	rs := &Ruleset{
		Table:  &nftables.Table{Name: cfg.Table, Family: nftables.TableFamilyINet},
		Sets:   sets,
		Chains: []ChainSpec{preroutingChain(cfg), forwardChain(cfg), leakGuardChain(cfg)},
	}
	if err := rs.check(); err != nil {
		return nil, err
	}
	return rs, nil
}

// check catches mistakes in Render itself (or in a future chain added to it)
// before they reach the kernel or break Drift and Counters.
func (rs *Ruleset) check() error {
	seen := map[string]bool{}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			switch {
			case r.Comment == "":
				return fmt.Errorf("chain %s: rule without comment", c.Name)
			case len(r.Comment) > maxCommentLen:
				return fmt.Errorf("chain %s: comment %q longer than %d bytes", c.Name, r.Comment, maxCommentLen)
			case seen[r.Comment]:
				return fmt.Errorf("chain %s: duplicate rule comment %q", c.Name, r.Comment)
			}
			seen[r.Comment] = true
		}
	}
	return nil
}

// podSets are the four sets of st's pod CIDRs, their comments starting
// with who.
func podSets(st State, who string) ([]SetSpec, error) {
	local4, local6, err := normalize(st.Local)
	if err != nil {
		return nil, fmt.Errorf("local prefixes: %w", err)
	}
	remote4, remote6, err := normalize(st.Remote)
	if err != nil {
		return nil, fmt.Errorf("remote prefixes: %w", err)
	}
	return []SetSpec{
		addrSet(SetLocal4, who+": this node's IPv4 pod CIDRs", nftables.TypeIPAddr, local4),
		addrSet(SetLocal6, who+": this node's IPv6 pod CIDRs", nftables.TypeIP6Addr, local6),
		addrSet(SetRemote4, who+": other nodes' IPv4 pod CIDRs (encrypted)", nftables.TypeIPAddr, remote4),
		addrSet(SetRemote6, who+": other nodes' IPv6 pod CIDRs (encrypted)", nftables.TypeIP6Addr, remote6),
	}, nil
}

func addrSet(name, comment string, kt nftables.SetDatatype, ps []netip.Prefix) SetSpec {
	return SetSpec{Name: name, Comment: comment, KeyType: kt, Prefixes: ps, Elements: intervalElements(ps)}
}

func preroutingChain(cfg Config) ChainSpec {
	rules := []RuleSpec{{
		Comment: CommentTunnelIngress,
		Exprs:   concat(ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, cfg.TunnelIface), counterAndMark(cfg)),
	}}
	if cfg.Strict {
		rules = append(rules, strictIngressRules(cfg)...)
	}
	rules = append(rules, egressRules(cfg)...)
	return ChainSpec{
		Name:     ChainPrerouting,
		Type:     nftables.ChainTypeFilter,
		Hook:     *nftables.ChainHookPrerouting,
		Priority: PriorityPrerouting,
		Policy:   nftables.ChainPolicyAccept,
		Rules:    rules,
	}
}

// strictIngressRules drop what strict mode forbids on the way in:
// `meta nfproto ipv4 iifname != "<tunnel>" ip saddr @remote4 ip daddr
// @local4 counter drop`, and the same for IPv6. Placement, in prerouting at
// dstnat+10:
//   - after kube-proxy's DNAT, so a plaintext packet addressed to a Service
//     VIP whose backend is a local pod is judged by that pod's address, and
//     dropped like one sent to the pod directly; encrypted traffic that the
//     remote node DNATed before sealing it arrives through the tunnel and is
//     exempt like all decrypted traffic;
//   - decrypted packets come out of the tunnel device and are exempt by
//     iifname; the tunnel's own UDP has node addresses, not pod ones;
//   - local pods' traffic has a local source, never in @remote4/6;
//   - ICMP errors from other nodes (fragmentation needed) carry the node's
//     address as source and still pass.
//
// Before the egress rules, which a packet with a remote source never
// matches anyway.
func strictIngressRules(cfg Config) []RuleSpec {
	return []RuleSpec{
		{
			Comment: CommentStrictIngress4,
			Exprs:   concat(matchNfproto(unix.NFPROTO_IPV4), ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, cfg.TunnelIface), lookupAddr(ipv4Saddr, SetRemote4), lookupAddr(ipv4Daddr, SetLocal4), counterAndDrop()),
		},
		{
			Comment: CommentStrictIngress6,
			Exprs:   concat(matchNfproto(unix.NFPROTO_IPV6), ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, cfg.TunnelIface), lookupAddr(ipv6Saddr, SetRemote6), lookupAddr(ipv6Daddr, SetLocal6), counterAndDrop()),
		},
	}
}

func egressRules(cfg Config) []RuleSpec {
	return []RuleSpec{
		{
			Comment: CommentEgress4,
			Exprs:   concat(matchNfproto(unix.NFPROTO_IPV4), lookupAddr(ipv4Saddr, SetLocal4), lookupAddr(ipv4Daddr, SetRemote4), counterAndMark(cfg)),
		},
		{
			Comment: CommentEgress6,
			Exprs:   concat(matchNfproto(unix.NFPROTO_IPV6), lookupAddr(ipv6Saddr, SetLocal6), lookupAddr(ipv6Daddr, SetRemote6), counterAndMark(cfg)),
		},
	}
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ifname matches the input or output interface name (key
// expr.MetaKeyIIFNAME or expr.MetaKeyOIFNAME) with op against the full
// IFNAMSIZ buffer, as nft does for an exact (non-wildcard) name. One
// function for every name match, so the rule text and the padding cannot
// drift apart between them.
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	data := make([]byte, unix.IFNAMSIZ)
	copy(data, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

func counterAndDrop() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
}

// matchNfproto restricts an inet-family rule to one L3 protocol, so the
// payload offsets that follow are read from the right header.
func matchNfproto(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

type addrField struct{ offset, len uint32 }

var (
	ipv4Saddr = addrField{offset: 12, len: 4}
	ipv4Daddr = addrField{offset: 16, len: 4}
	ipv6Saddr = addrField{offset: 8, len: 16}
	ipv6Daddr = addrField{offset: 24, len: 16}
)

func lookupAddr(f addrField, set string) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.offset, Len: f.len},
		&expr.Lookup{SourceRegister: 1, SetName: set},
	}
}

// counterAndMark counts the packet and sets mark = (mark & ^Mask) | Mark:
// only crosswire's bits change, every other owner's bits (kube-proxy,
// Calico, Cilium, Tailscale) are kept. The mark register is host-endian.
func counterAndMark(cfg Config) []expr.Any {
	return []expr.Any{
		&expr.Counter{},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{
			SourceRegister: 1,
			DestRegister:   1,
			Len:            4,
			Mask:           binaryutil.NativeEndian.PutUint32(^cfg.Mask),
			Xor:            binaryutil.NativeEndian.PutUint32(cfg.Mark),
		},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}
