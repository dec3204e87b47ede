package nft

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func testState() State {
	return State{
		Local:  pfx("10.244.1.0/24", "fd00:1::/64"),
		Remote: pfx("10.244.2.0/24", "fd00:2::/64", "10.244.3.0/24"),
	}
}

func TestRenderTableSetsChains(t *testing.T) {
	rs, err := Render(validConfig(), testState())
	if err != nil {
		t.Fatal(err)
	}
	if rs.Table.Name != "crosswire" || rs.Table.Family != nftables.TableFamilyINet {
		t.Fatalf("table = %+v, want inet crosswire", rs.Table)
	}
	wantSets := map[string]struct {
		kt nftables.SetDatatype
		ps []netip.Prefix
	}{
		SetLocal4:  {nftables.TypeIPAddr, pfx("10.244.1.0/24")},
		SetLocal6:  {nftables.TypeIP6Addr, pfx("fd00:1::/64")},
		SetRemote4: {nftables.TypeIPAddr, pfx("10.244.2.0/24", "10.244.3.0/24")},
		SetRemote6: {nftables.TypeIP6Addr, pfx("fd00:2::/64")},
	}
	if len(rs.Sets) != len(wantSets) {
		t.Fatalf("got %d sets, want %d", len(rs.Sets), len(wantSets))
	}
	for name, w := range wantSets {
		s := rs.Set(name)
		if s == nil {
			t.Fatalf("set %s missing", name)
		}
		if s.KeyType.Name != w.kt.Name || !slices.Equal(s.Prefixes, w.ps) {
			t.Errorf("set %s: type %s prefixes %v; want %s %v", name, s.KeyType.Name, s.Prefixes, w.kt.Name, w.ps)
		}
		if !reflect.DeepEqual(s.Elements, intervalElements(w.ps)) {
			t.Errorf("set %s: elements %v do not encode %v", name, s.Elements, w.ps)
		}
		if !strings.HasPrefix(s.Comment, "crosswire: ") {
			t.Errorf("set %s: comment %q", name, s.Comment)
		}
	}
	if len(rs.Chains) != 3 {
		t.Fatalf("got %d chains, want 3", len(rs.Chains))
	}
	c := rs.Chain(ChainPrerouting)
	if c == nil {
		t.Fatal("chain prerouting missing")
	}
	if c.Type != nftables.ChainTypeFilter || c.Hook != *nftables.ChainHookPrerouting || c.Priority != *nftables.ChainPriorityNATDest+10 || c.Policy != nftables.ChainPolicyAccept {
		t.Fatalf("chain = %+v, want filter hook prerouting priority dstnat+10 policy accept", c)
	}
	f := rs.Chain(ChainForward)
	if f == nil {
		t.Fatal("chain forward missing")
	}
	if f.Type != nftables.ChainTypeFilter || f.Hook != *nftables.ChainHookForward || f.Priority != *nftables.ChainPriorityMangle || f.Policy != nftables.ChainPolicyAccept {
		t.Fatalf("chain = %+v, want filter hook forward priority mangle policy accept", f)
	}
}

func TestRenderEmptyStateStillHasAllObjects(t *testing.T) {
	rs, err := Render(Config{Mark: 1, Mask: 1, TunnelIface: "wg"}, State{})
	if err != nil {
		t.Fatal(err)
	}
	if rs.Table.Name != DefaultTable {
		t.Errorf("table %q, want default %q", rs.Table.Name, DefaultTable)
	}
	if len(rs.Sets) != 4 || len(rs.Chains) != 3 || len(rs.Chains[0].Rules) != 3 || len(rs.Chains[1].Rules) != 2 || len(rs.Chains[2].Rules) != 1 {
		t.Fatalf("got %d sets %d chains; want 4 sets, 3 chains with 3, 2 and 1 rules", len(rs.Sets), len(rs.Chains))
	}
	for _, s := range rs.Sets {
		if len(s.Elements) != 0 {
			t.Errorf("set %s has elements %v", s.Name, s.Elements)
		}
	}
}

func TestRenderRejectsInvalidPrefix(t *testing.T) {
	if _, err := Render(validConfig(), State{Remote: []netip.Prefix{{}}}); err == nil {
		t.Fatal("Render accepted an invalid prefix")
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	st := testState()
	a, _ := Render(validConfig(), st)
	slices.Reverse(st.Remote)
	b, _ := Render(validConfig(), st)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Render depends on input order")
	}
}

func ne32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// markExprs is `counter meta mark set mark & 0xffffcfff ^ 0x1000` for Mark
// 0x1000 Mask 0x3000, spelled out independently of render.go.
func markExprs() []expr.Any {
	return []expr.Any{
		&expr.Counter{},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ne32(0xffffcfff), Xor: ne32(0x1000)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}

func TestRenderRules(t *testing.T) {
	rs, err := Render(validConfig(), testState())
	if err != nil {
		t.Fatal(err)
	}
	iif := make([]byte, 16)
	copy(iif, "crosswire0")
	want := []RuleSpec{
		{
			Comment: "crosswire: mark decrypted packets from the tunnel so strict rp_filter (src_valid_mark) finds the tunnel route",
			Exprs: append([]expr.Any{
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: iif},
			}, markExprs()...),
		},
		{
			Comment: "crosswire: local pod -> remote pod (IPv4): route into the WireGuard tunnel",
			Exprs: append([]expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Lookup{SourceRegister: 1, SetName: "local4"},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Lookup{SourceRegister: 1, SetName: "remote4"},
			}, markExprs()...),
		},
		{
			Comment: "crosswire: local pod -> remote pod (IPv6): route into the WireGuard tunnel",
			Exprs: append([]expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
				&expr.Lookup{SourceRegister: 1, SetName: "local6"},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
				&expr.Lookup{SourceRegister: 1, SetName: "remote6"},
			}, markExprs()...),
		},
	}
	got := rs.Chain(ChainPrerouting).Rules
	if len(got) != len(want) {
		t.Fatalf("got %d rules, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Comment != want[i].Comment {
			t.Errorf("rule %d comment %q, want %q", i, got[i].Comment, want[i].Comment)
		}
		if !reflect.DeepEqual(got[i].Exprs, want[i].Exprs) {
			t.Errorf("rule %d (%s) exprs:\n got %#v\nwant %#v", i, want[i].Comment, got[i].Exprs, want[i].Exprs)
		}
	}
}

// applyMark runs the rendered bitwise expression on a mark value the way
// the kernel does: (reg & mask) ^ xor, on the host-endian register.
func applyMark(t *testing.T, exprs []expr.Any, mark uint32) uint32 {
	t.Helper()
	for _, e := range exprs {
		if b, ok := e.(*expr.Bitwise); ok {
			return (mark & binary.NativeEndian.Uint32(b.Mask)) ^ binary.NativeEndian.Uint32(b.Xor)
		}
	}
	t.Fatal("no bitwise expression")
	return 0
}

func TestMarkArithmeticKeepsForeignBits(t *testing.T) {
	rs, err := Render(Config{Mark: 0x1000, Mask: 0x3000, TunnelIface: "crosswire0"}, State{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.Chains[0].Rules {
		for _, tc := range []struct{ in, want uint32 }{
			{0, 0x1000},
			{0x2000, 0x1000},                   // our other bit is cleared
			{0x3000, 0x1000},                   // both of ours: only Mark stays
			{0x1000, 0x1000},                   // idempotent
			{0xffff_cfff, 0xffff_dfff},         // every foreign bit kept
			{0x4000 | 0x0f00, 0x4000 | 0x1f00}, // kube-proxy and Cilium bits kept
		} {
			if got := applyMark(t, r.Exprs, tc.in); got != tc.want {
				t.Errorf("%s: mark %#x -> %#x, want %#x", r.Comment, tc.in, got, tc.want)
			}
		}
	}
}

func TestRuleCommentsUniqueAndShort(t *testing.T) {
	rs, err := Render(validConfig(), testState())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			if r.Comment == "" || len(r.Comment) > 127 || seen[r.Comment] {
				t.Errorf("bad comment %q", r.Comment)
			}
			seen[r.Comment] = true
			if !slices.ContainsFunc(r.Exprs, func(e expr.Any) bool { _, ok := e.(*expr.Counter); return ok }) {
				t.Errorf("rule %q has no counter", r.Comment)
			}
		}
	}
	bad := &Ruleset{Chains: []ChainSpec{{Name: "x", Rules: []RuleSpec{{Comment: "a"}, {Comment: "a"}}}}}
	if bad.check() == nil {
		t.Error("check accepted duplicate comments")
	}
}

func TestBindSetsDoesNotMutateRender(t *testing.T) {
	rs, _ := Render(validConfig(), testState())
	exprs := rs.Chains[0].Rules[1].Exprs
	bound, err := bindSets(exprs, map[string]uint32{"local4": 1, "remote4": 3})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	for i, e := range bound {
		if l, ok := e.(*expr.Lookup); ok {
			ids = append(ids, l.SetID)
			if exprs[i].(*expr.Lookup).SetID != 0 {
				t.Fatal("bindSets mutated the rendered expression")
			}
		}
	}
	if !slices.Equal(ids, []uint32{1, 3}) {
		t.Fatalf("bound set IDs %v, want [1 3]", ids)
	}
	if _, err := bindSets(exprs, nil); err == nil {
		t.Fatal("bindSets accepted an unknown set")
	}
}

func TestRenderStrictRules(t *testing.T) {
	cfg := validConfig()
	plain, err := Render(cfg, testState())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Strict = true
	rs, err := Render(cfg, testState())
	if err != nil {
		t.Fatal(err)
	}
	// Strict adds two rules between the tunnel rule and the egress rules
	// and changes nothing else.
	wantOrder := []string{CommentTunnelIngress, CommentStrictIngress4, CommentStrictIngress6, CommentEgress4, CommentEgress6}
	var got []string
	for _, r := range rs.Chain(ChainPrerouting).Rules {
		got = append(got, r.Comment)
	}
	if !slices.Equal(got, wantOrder) {
		t.Fatalf("strict prerouting rules %q, want %q", got, wantOrder)
	}
	for _, r := range plain.Chain(ChainPrerouting).Rules {
		if r.Comment == CommentStrictIngress4 || r.Comment == CommentStrictIngress6 {
			t.Errorf("non-strict table has rule %q", r.Comment)
		}
	}
	if !reflect.DeepEqual(plain.Sets, rs.Sets) || !reflect.DeepEqual(plain.Chain(ChainForward), rs.Chain(ChainForward)) {
		t.Error("strict changed sets or the forward chain")
	}

	notTunnel := make([]byte, 16)
	copy(notTunnel, "crosswire0")
	drop := []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
	want := []RuleSpec{
		{
			Comment: "crosswire: strict: drop remote pod -> local pod (IPv4) that did not come through the tunnel (sent in clear)",
			Exprs: append([]expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: notTunnel},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Lookup{SourceRegister: 1, SetName: "remote4"},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Lookup{SourceRegister: 1, SetName: "local4"},
			}, drop...),
		},
		{
			Comment: "crosswire: strict: drop remote pod -> local pod (IPv6) that did not come through the tunnel (sent in clear)",
			Exprs: append([]expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: notTunnel},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
				&expr.Lookup{SourceRegister: 1, SetName: "remote6"},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
				&expr.Lookup{SourceRegister: 1, SetName: "local6"},
			}, drop...),
		},
	}
	rules := rs.Chain(ChainPrerouting).Rules
	for i, w := range want {
		g := rules[i+1]
		if g.Comment != w.Comment {
			t.Errorf("strict rule %d comment %q, want %q", i, g.Comment, w.Comment)
		}
		if !reflect.DeepEqual(g.Exprs, w.Exprs) {
			t.Errorf("strict rule %d exprs:\n got %#v\nwant %#v", i, g.Exprs, w.Exprs)
		}
	}
	// The other rules are those of the non-strict table, exactly.
	pr := plain.Chain(ChainPrerouting).Rules
	if !reflect.DeepEqual(rules[0], pr[0]) || !reflect.DeepEqual(rules[3:], pr[1:]) {
		t.Error("strict changed the marking rules")
	}
}
