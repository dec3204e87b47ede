package nft

import (
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The guard table holds its own copies of the four sets and drops local
// pod -> remote pod traffic of either family that leaves by anything but
// the tunnel, whatever its mark.
func TestRenderGuard(t *testing.T) {
	cfg := validConfig()
	st := testState()
	rs, err := RenderGuard(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Table.Name != "crosswire-guard" || rs.Table.Family != nftables.TableFamilyINet {
		t.Fatalf("table = %+v, want inet crosswire-guard", rs.Table)
	}
	main, err := Render(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{SetLocal4, SetLocal6, SetRemote4, SetRemote6} {
		if g, m := rs.Set(name), main.Set(name); g == nil || !slices.Equal(g.Prefixes, m.Prefixes) {
			t.Errorf("guard set %s = %v, want crosswire's %v", name, g, m.Prefixes)
		}
	}
	if len(rs.Chains) != 1 {
		t.Fatalf("guard chains = %d, want 1", len(rs.Chains))
	}
	c := rs.Chains[0]
	if c.Name != ChainGuard || c.Hook != *nftables.ChainHookForward || c.Type != nftables.ChainTypeFilter || c.Policy != nftables.ChainPolicyAccept {
		t.Fatalf("guard chain = %+v", c)
	}
	tunnel := make([]byte, unix.IFNAMSIZ)
	copy(tunnel, "crosswire0")
	rule := func(comment string, proto byte, saddr, daddr addrField, local, remote string) RuleSpec {
		return RuleSpec{Comment: comment, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddr.offset, Len: saddr.len},
			&expr.Lookup{SourceRegister: 1, SetName: local},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddr.offset, Len: daddr.len},
			&expr.Lookup{SourceRegister: 1, SetName: remote},
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: tunnel},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}}
	}
	want := []RuleSpec{
		rule(CommentGuard4, unix.NFPROTO_IPV4, ipv4Saddr, ipv4Daddr, SetLocal4, SetRemote4),
		rule(CommentGuard6, unix.NFPROTO_IPV6, ipv6Saddr, ipv6Daddr, SetLocal6, SetRemote6),
	}
	if !reflect.DeepEqual(c.Rules, want) {
		t.Fatalf("guard rules:\n got %#v\nwant %#v", c.Rules, want)
	}
	// No comment of the guard's may repeat one of crosswire's table:
	// Counters keys both tables' rules by comment.
	for _, ch := range main.Chains {
		for _, r := range ch.Rules {
			if r.Comment == CommentGuard4 || r.Comment == CommentGuard6 {
				t.Errorf("comment %q in both tables", r.Comment)
			}
		}
	}
	cfg.Strict = true
	strict, err := RenderGuard(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(strict, rs) {
		t.Error("strict mode changed the guard table")
	}
}

// TestGuardTableKeepsDatapathClosed sends a local pod's packets to a
// remote pod address that the underlay would deliver (the node has no
// policy routing, newForwardLab) while crosswire's table or its guard is
// tampered with: either table alone keeps them off the underlay, and only
// with both gone do they get through (the control that proves the test
// can fail).
func TestGuardTableKeepsDatapathClosed(t *testing.T) {
	lab := newForwardLab(t)
	lab.under.nft(t, "add table ip seen")
	lab.under.nft(t, "add chain ip seen in { type filter hook input priority filter; }")
	lab.under.nft(t, `add rule ip seen in ip saddr 10.244.1.10 icmp type echo-request counter`)
	arrived := func() uint64 {
		out := lab.under.nft(t, "list chain ip seen in")
		f := strings.Fields(out[strings.Index(out, "packets"):])
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("seen counter in %q: %v", out, err)
		}
		return n
	}
	m := newTestManager(t, lab.node)
	st := State{Local: pfx("10.244.1.0/24"), Remote: pfx("10.244.2.0/24")}
	counted := func() (leak, guard uint64) {
		t.Helper()
		c, err := m.Counters()
		if err != nil {
			t.Fatal(err)
		}
		return c[CommentLeakGuard].Packets, c[CommentGuard4].Packets
	}
	ping := func(addr string) error {
		_, err := lab.pod.try("ping", "-c", "1", "-W", "1", addr)
		return err
	}

	for _, tc := range []struct {
		name    string
		tamper  []string // nft commands on the node
		byLeak  bool     // crosswire's mark-based leak guard is left to drop it
		byGuard bool     // the guard table is left to drop it
	}{
		{"both tables", nil, true, true},
		{"crosswire flushed", []string{"flush table inet crosswire"}, false, true},
		{"crosswire deleted", []string{"delete table inet crosswire"}, false, true},
		{"guard flushed", []string{"flush table inet crosswire-guard"}, true, false},
		{"guard deleted", []string{"delete table inet crosswire-guard"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.Apply(st); err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.tamper {
				lab.node.nft(t, c)
			}
			before := arrived()
			leak0, guard0 := counted()
			if err := ping("10.244.2.10"); err == nil {
				t.Error("a local pod reached a remote pod address over the underlay")
			}
			if got := arrived() - before; got != 0 {
				t.Errorf("%d echo requests reached the remote pod over the underlay", got)
			}
			leak, guard := counted()
			if d := leak - leak0 + guard - guard0; d != 1 {
				t.Errorf("leak guards counted %d drops (mark-based %d, guard table %d), want 1", d, leak-leak0, guard-guard0)
			}
			if !tc.byLeak && leak != leak0 || !tc.byGuard && guard != guard0 {
				t.Errorf("a tampered table counted a drop: mark-based %d, guard table %d", leak-leak0, guard-guard0)
			}
			if d, err := m.Drift(st); err != nil || (len(tc.tamper) > 0) != (len(d) > 0) {
				t.Errorf("Drift = %q, %v", d, err)
			}
		})
	}

	// Through the tunnel device the same traffic passes both tables.
	if err := m.Apply(st); err != nil {
		t.Fatal(err)
	}
	if err := ping("10.244.2.11"); err != nil {
		t.Errorf("ping leaving by the tunnel device: %v", err)
	}
	// The control: with both tables gone the packet crosses the underlay.
	if err := m.Delete(); err != nil {
		t.Fatal(err)
	}
	before := arrived()
	if err := ping("10.244.2.10"); err != nil {
		t.Errorf("control without crosswire's tables: %v", err)
	}
	if got := arrived() - before; got != 1 {
		t.Errorf("control: %d echo requests reached the remote pod, want 1", got)
	}
}

// In strict mode with the cluster's ranges configured, the guard also
// drops a local pod's traffic to a cluster address no set knows (a Node
// that joined while the agent could not apply), unless it leaves by the
// tunnel; without strict, or without the ranges, it does not.
func TestGuardClusterRanges(t *testing.T) {
	cfg := validConfig()
	cfg.ClusterCIDRs = pfx("10.244.0.0/16", "fd00:10:244::/48")
	plain, err := RenderGuard(cfg, testState())
	if err != nil {
		t.Fatal(err)
	}
	if plain.Set(SetCluster4) != nil || len(plain.Chains[0].Rules) != 2 {
		t.Fatal("cluster ranges used without strict mode")
	}
	cfg.Strict = true
	rs, err := RenderGuard(cfg, testState())
	if err != nil {
		t.Fatal(err)
	}
	if s := rs.Set(SetCluster4); s == nil || !slices.Equal(s.Prefixes, pfx("10.244.0.0/16")) {
		t.Fatalf("cluster4 = %+v", s)
	}
	if s := rs.Set(SetCluster6); s == nil || !slices.Equal(s.Prefixes, pfx("fd00:10:244::/48")) {
		t.Fatalf("cluster6 = %+v", s)
	}
	var comments []string
	for _, r := range rs.Chains[0].Rules {
		comments = append(comments, r.Comment)
	}
	if want := []string{CommentGuard4, CommentGuard6, CommentGuardCluster4, CommentGuardCluster6}; !slices.Equal(comments, want) {
		t.Fatalf("rules %q, want %q", comments, want)
	}
	bad := validConfig()
	bad.ClusterCIDRs = []netip.Prefix{{}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "cluster CIDRs") {
		t.Fatalf("Validate of an invalid cluster CIDR = %v", err)
	}

	lab := newForwardLab(t)
	// A pod CIDR of the cluster that no set holds yet, on the underlay.
	lab.under.run(t, "ip", "addr", "add", "10.244.9.10/32", "dev", "ue")
	lab.node.run(t, "ip", "route", "add", "10.244.9.10/32", "dev", "eth0")
	lab.tun.run(t, "ip", "addr", "add", "10.244.9.11/32", "dev", "tp")
	lab.node.run(t, "ip", "route", "add", "10.244.9.11/32", "dev", "crosswire0")
	st := State{Local: pfx("10.244.1.0/24"), Remote: pfx("10.244.2.0/24")}
	ping := func(addr string) error {
		_, err := lab.pod.try("ping", "-c", "1", "-W", "1", addr)
		return err
	}
	for _, strict := range []bool{false, true} {
		c := cfg
		c.Strict = strict
		m, err := New(c, WithNetNS(lab.node.fd()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if err := m.Apply(st); err != nil {
			t.Fatal(err)
		}
		err = ping("10.244.9.10")
		counters, cerr := m.Counters()
		if cerr != nil {
			t.Fatal(cerr)
		}
		switch {
		case !strict && err != nil:
			t.Errorf("non-strict: a pod CIDR no set holds was not reached (the control): %v", err)
		case strict && err == nil:
			t.Error("strict: a local pod reached an unknown cluster address over the underlay")
		case strict && counters[CommentGuardCluster4].Packets != 1:
			t.Errorf("strict: cluster rule counted %d drops, want 1", counters[CommentGuardCluster4].Packets)
		}
		if err := ping("10.244.9.11"); err != nil {
			t.Errorf("strict %t: ping leaving by the tunnel device: %v", strict, err)
		}
		if err := ping("10.244.1.1"); err != nil {
			t.Errorf("strict %t: ping to this node: %v", strict, err)
		}
		assertNoDrift(t, m, st)
	}
}
