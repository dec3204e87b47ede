package nft

import (
	"reflect"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TestRenderMSSClamp pins the forward chain to what
// `nft --debug=netlink` prints for
// `meta nfproto ipv4 oifname "crosswire0" tcp flags & (syn|rst) == syn counter tcp option maxseg size set rt mtu`.
func TestRenderMSSClamp(t *testing.T) {
	rs, err := Render(validConfig(), testState())
	if err != nil {
		t.Fatal(err)
	}
	oif := make([]byte, 16)
	copy(oif, "crosswire0")
	rule := func(proto byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: oif},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x06}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x02}},
			&expr.Counter{},
			&expr.Rt{Register: 1, Key: expr.RtTCPMSS},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 2, Size: 2},
			&expr.Exthdr{SourceRegister: 1, Type: 2, Offset: 2, Len: 2, Op: expr.ExthdrOpTcpopt},
		}
	}
	want := []RuleSpec{
		{Comment: "crosswire: clamp the MSS of TCP SYNs entering the tunnel to its route MTU (IPv4)", Exprs: rule(unix.NFPROTO_IPV4)},
		{Comment: "crosswire: clamp the MSS of TCP SYNs entering the tunnel to its route MTU (IPv6)", Exprs: rule(unix.NFPROTO_IPV6)},
	}
	got := rs.Chain(ChainForward).Rules
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("forward rules:\n got %#v\nwant %#v", got, want)
	}
}

// TestRenderNeverDrops: crosswire's rules must not drop anything, ICMP
// "fragmentation needed" and "packet too big" above all, or path MTU
// discovery through the tunnel breaks. No rule carries a verdict but the
// leak guard's, which drops only traffic crosswire marked for the tunnel
// (leakguard_test.go).
func TestRenderNeverDrops(t *testing.T) {
	rs, err := Render(validConfig(), testState())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rs.Chains {
		if c.Name == ChainLeakGuard {
			continue
		}
		if c.Policy != nftables.ChainPolicyAccept {
			t.Errorf("chain %s policy %d, want accept", c.Name, c.Policy)
		}
		for _, r := range c.Rules {
			for _, e := range r.Exprs {
				switch e.(type) {
				case *expr.Verdict, *expr.Reject, *expr.Immediate:
					t.Errorf("chain %s rule %q has a verdict %#v", c.Name, r.Comment, e)
				}
			}
		}
	}
}
