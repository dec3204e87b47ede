package nft

import (
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// PriorityForward is mangle (-150), where MSS clamping conventionally runs:
// before any filter-priority chain of another owner sees the SYN.
const PriorityForward nftables.ChainPriority = -150

// forwardChain clamps the MSS option of TCP SYNs (and SYN-ACKs) that leave
// through the tunnel to what fits its route MTU. Pods keep the CNI's MTU
// (typically 1500) while the tunnel's is 60-80 bytes smaller; without the
// clamp a TCP flow depends on ICMP "fragmentation needed" reaching the pod,
// and where that is filtered, bulk transfers stall after the handshake. Both
// ends of a cross-node flow clamp their own SYN, so both directions fit.
//
// The chain only rewrites and never drops: ICMP "fragmentation needed" and
// "packet too big" pass crosswire's rules untouched, which is what lets
// non-TCP traffic discover the tunnel's path MTU.
func forwardChain(cfg Config) ChainSpec {
	return ChainSpec{
		Name:     ChainForward,
		Type:     nftables.ChainTypeFilter,
		Hook:     *nftables.ChainHookForward,
		Priority: PriorityForward,
		Policy:   nftables.ChainPolicyAccept,
		Rules: []RuleSpec{
			{Comment: CommentMSSClamp4, Exprs: concat(matchNfproto(unix.NFPROTO_IPV4), ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, cfg.TunnelIface), matchTCPSyn(), clampMSSToRoute())},
			{Comment: CommentMSSClamp6, Exprs: concat(matchNfproto(unix.NFPROTO_IPV6), ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, cfg.TunnelIface), matchTCPSyn(), clampMSSToRoute())},
		},
	}
}

// TCP flag bits in byte 13 of the TCP header.
const (
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
)

// matchTCPSyn is `tcp flags & (syn|rst) == syn`: SYN and SYN-ACK carry the
// MSS option; a SYN with RST set is bogus and left alone.
func matchTCPSyn() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpFlagSYN | tcpFlagRST}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{tcpFlagSYN}},
	}
}

// clampMSSToRoute is `counter tcp option maxseg size set rt mtu`, as nft
// compiles it: the route's MTU minus the IP and TCP headers of the packet's
// family, in network order, written over the MSS option's value. The kernel
// only ever lowers an MSS with it, and leaves SYNs without the option alone.
func clampMSSToRoute() []expr.Any {
	return []expr.Any{
		&expr.Counter{},
		&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 2, Size: 2},
		&expr.Exthdr{SourceRegister: 1, Type: tcpOptMaxSeg, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
	}
}

// tcpOptMaxSeg is the TCP option kind of the MSS; its 2-byte value follows
// kind and length, at offset 2.
const tcpOptMaxSeg = 2
