package nft

import (
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// ChainLeakGuard holds the one rule that keeps crosswire fail-closed when
// routing is tampered with.
const ChainLeakGuard = "leakguard"

// CommentLeakGuard names the leak guard rule (and its counter).
const CommentLeakGuard = "crosswire: drop pod traffic marked for the tunnel that would leave by another device (policy routing lost)"

// leakGuardChain drops forwarded packets that carry crosswire's mark but
// are about to leave by a device other than the tunnel:
//
//	meta mark & MASK == MARK iifname != "<tunnel>" oifname != "<tunnel>" counter drop
//
// The blackhole routes keep marked traffic from leaking while the tunnel
// device is gone, but they live in crosswire's routing table: if another
// program deletes the fwmark rule or flushes that table, marked pod packets
// follow the main table's plain routes onto the underlay. This rule does
// not depend on routing at all. Decrypted packets from the tunnel carry the
// mark too (for rp_filter) and are exempt by iifname; the tunnel's own UDP
// is node-originated, never forwarded, and carries the WireGuard fwmark,
// not crosswire's. Its own chain, so the forward chain's MSS clamp keeps
// its promise never to drop.
func leakGuardChain(cfg Config) ChainSpec {
	return ChainSpec{
		Name:     ChainLeakGuard,
		Type:     nftables.ChainTypeFilter,
		Hook:     *nftables.ChainHookForward,
		Priority: *nftables.ChainPriorityFilter,
		Policy:   nftables.ChainPolicyAccept,
		Rules: []RuleSpec{{
			Comment: CommentLeakGuard,
			Exprs: concat(
				matchMark(cfg),
				ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, cfg.TunnelIface),
				ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, cfg.TunnelIface),
				counterAndDrop(),
			),
		}},
	}
}

// matchMark is `meta mark & Mask == Mark`: crosswire's bits only, whatever
// other owners set. The mark register is host-endian.
func matchMark(cfg Config) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{
			SourceRegister: 1,
			DestRegister:   1,
			Len:            4,
			Mask:           binaryutil.NativeEndian.PutUint32(cfg.Mask),
			Xor:            binaryutil.NativeEndian.PutUint32(0),
		},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(cfg.Mark)},
	}
}
