package nft

import (
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var handleRE = regexp.MustCompile(`handle [0-9]+`)

func newTestManager(t *testing.T, ns *testNS) *Manager {
	t.Helper()
	m, err := New(validConfig(), WithNetNS(ns.fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func wantSets(st State) map[string][]string {
	l4, l6, _ := normalize(st.Local)
	r4, r6, _ := normalize(st.Remote)
	return map[string][]string{"local4": strs(l4), "local6": strs(l6), "remote4": strs(r4), "remote6": strs(r6)}
}

func assertSets(t *testing.T, kv kernelView, want map[string][]string) {
	t.Helper()
	for name, w := range want {
		got, ok := kv.sets[name]
		if !ok {
			t.Errorf("set %s missing in kernel", name)
			continue
		}
		if !slices.Equal(got, w) {
			t.Errorf("set %s = %v, want %v", name, got, w)
		}
	}
	if len(kv.sets) != len(want) {
		t.Errorf("kernel has sets %v, want exactly %d", kv.sets, len(want))
	}
}

func assertNoDrift(t *testing.T, m *Manager, st State) {
	t.Helper()
	d, err := m.Drift(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 0 {
		t.Fatalf("unexpected drift: %q", d)
	}
}

func TestApplyProgramsTable(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	st := testState()
	if err := m.Apply(st); err != nil {
		t.Fatal(err)
	}
	kv := listTable(t, ns, "crosswire")
	assertSets(t, kv, wantSets(st))
	c, ok := kv.chains["prerouting"]
	if !ok {
		t.Fatalf("chain prerouting missing: %+v", kv.chains)
	}
	if c != (nftChain{Type: "filter", Hook: "prerouting", Prio: -90, Policy: "accept"}) {
		t.Errorf("chain prerouting = %+v", c)
	}
	if want := []string{CommentTunnelIngress, CommentEgress4, CommentEgress6}; !slices.Equal(kv.rules["prerouting"], want) {
		t.Errorf("rule comments = %q, want %q", kv.rules["prerouting"], want)
	}
	// nft's own rendering of the statements, as an operator would read it.
	// nft prints the mask as ^Mask|Mark (0xffffdfff, not 0xffffcfff): the same
	// function, since the xor sets that bit anyway.
	text := ns.nft(t, "list", "chain", "inet", "crosswire", "prerouting")
	for _, want := range []string{
		`type filter hook prerouting priority dstnat + 10; policy accept;`,
		`iifname "crosswire0" counter packets 0 bytes 0 meta mark set meta mark & 0xffffdfff | 0x00001000`,
		`ip saddr @local4 ip daddr @remote4 counter packets 0 bytes 0 meta mark set meta mark & 0xffffdfff | 0x00001000`,
		`ip6 saddr @local6 ip6 daddr @remote6 counter packets 0 bytes 0 meta mark set meta mark & 0xffffdfff | 0x00001000`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("chain listing lacks %q:\n%s", want, text)
		}
	}
	if table := ns.nft(t, "list", "table", "inet", "crosswire"); !strings.Contains(table, `comment "crosswire: other nodes' IPv4 pod CIDRs (encrypted)"`) {
		t.Errorf("set comment missing:\n%s", table)
	}
	assertNoDrift(t, m, st)
}

func TestApplyEdgePrefixes(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	st := State{
		Local: pfx("0.0.0.0/0", "::/0"),
		Remote: pfx("255.255.255.255/32", "10.0.0.0/8", "10.1.0.0/16", "10.0.0.7/32",
			"11.0.0.0/24", "11.0.1.0/24", "::ffff:12.0.0.0/104",
			"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "fd00::1/64", "fd00::/64"),
	}
	if err := m.Apply(st); err != nil {
		t.Fatal(err)
	}
	assertSets(t, listTable(t, ns, "crosswire"), map[string][]string{
		"local4":  {"0.0.0.0/0"},
		"local6":  {"::/0"},
		"remote4": {"10.0.0.0/8", "11.0.0.0/24", "11.0.1.0/24", "12.0.0.0/8", "255.255.255.255/32"},
		"remote6": {"fd00::/64", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"},
	})
	assertNoDrift(t, m, st)
}

func TestApplyIdempotentAndReplaces(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	st := testState()
	for range 2 {
		if err := m.Apply(st); err != nil {
			t.Fatal(err)
		}
	}
	first := ns.nft(t, "list", "table", "inet", "crosswire")
	if err := m.Apply(st); err != nil {
		t.Fatal(err)
	}
	if again := ns.nft(t, "list", "table", "inet", "crosswire"); again != first {
		t.Fatalf("second Apply changed the table:\n%s\n---\n%s", first, again)
	}
	assertNoDrift(t, m, st)

	next := State{Local: pfx("10.244.7.0/24"), Remote: pfx("10.244.8.0/24", "fd00:8::/64")}
	if err := m.Apply(next); err != nil {
		t.Fatal(err)
	}
	kv := listTable(t, ns, "crosswire")
	assertSets(t, kv, wantSets(next))
	if len(kv.rules["prerouting"]) != 3 {
		t.Fatalf("rules after re-Apply: %q", kv.rules["prerouting"])
	}
	assertNoDrift(t, m, next)
	if d, _ := m.Drift(st); len(d) == 0 {
		t.Fatal("Drift against the old state is empty after replacing it")
	}
}

func TestAddRemoveRemote(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	st := testState()
	if err := m.Apply(st); err != nil {
		t.Fatal(err)
	}
	before := listTable(t, ns, "crosswire")
	chainBefore := ns.nft(t, "list", "chain", "inet", "crosswire", "prerouting")

	if err := m.AddRemote(pfx("10.244.4.0/24", "fd00:4::/64", "10.244.2.0/24", "10.244.2.128/25")); err != nil {
		t.Fatal(err)
	}
	kv := listTable(t, ns, "crosswire")
	if want := []string{"10.244.2.0/24", "10.244.3.0/24", "10.244.4.0/24"}; !slices.Equal(kv.sets["remote4"], want) {
		t.Errorf("remote4 after AddRemote = %v, want %v", kv.sets["remote4"], want)
	}
	if want := []string{"fd00:2::/64", "fd00:4::/64"}; !slices.Equal(kv.sets["remote6"], want) {
		t.Errorf("remote6 after AddRemote = %v, want %v", kv.sets["remote6"], want)
	}
	// A container replaces the elements it covers.
	if err := m.AddRemote(pfx("10.244.0.0/22")); err != nil {
		t.Fatal(err)
	}
	kv = listTable(t, ns, "crosswire")
	if want := []string{"10.244.0.0/22", "10.244.4.0/24"}; !slices.Equal(kv.sets["remote4"], want) {
		t.Errorf("remote4 after container AddRemote = %v, want %v", kv.sets["remote4"], want)
	}
	// Absent and partially present prefixes are skipped, present ones go.
	if err := m.RemoveRemote(pfx("10.244.4.0/24", "10.99.0.0/16", "10.244.1.0/24", "fd00:2::/64", "fd00:9::/64")); err != nil {
		t.Fatal(err)
	}
	kv = listTable(t, ns, "crosswire")
	if want := []string{"10.244.0.0/22"}; !slices.Equal(kv.sets["remote4"], want) {
		t.Errorf("remote4 after RemoveRemote = %v, want %v", kv.sets["remote4"], want)
	}
	if want := []string{"fd00:4::/64"}; !slices.Equal(kv.sets["remote6"], want) {
		t.Errorf("remote6 after RemoveRemote = %v, want %v", kv.sets["remote6"], want)
	}
	// Removing what is already gone is not an error.
	if err := m.RemoveRemote(pfx("10.244.4.0/24")); err != nil {
		t.Fatalf("RemoveRemote of an absent prefix: %v", err)
	}
	// Only remote elements changed.
	for _, s := range []string{"local4", "local6"} {
		if !slices.Equal(kv.sets[s], before.sets[s]) {
			t.Errorf("set %s changed: %v -> %v", s, before.sets[s], kv.sets[s])
		}
	}
	if after := ns.nft(t, "list", "chain", "inet", "crosswire", "prerouting"); after != chainBefore {
		t.Errorf("chain changed:\n%s\n---\n%s", chainBefore, after)
	}
	assertNoDrift(t, m, State{Local: st.Local, Remote: pfx("10.244.0.0/22", "fd00:4::/64")})
}

func TestIncrementalNeedsApply(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	err := m.AddRemote(pfx("10.244.4.0/24"))
	if !errors.Is(err, ErrNotApplied) {
		t.Fatalf("AddRemote without table = %v, want ErrNotApplied", err)
	}
	// Nor once the table is deleted behind a cache that knew it.
	if err := m.Apply(testState()); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRemote(pfx("10.244.4.0/24")); err != nil {
		t.Fatal(err)
	}
	ns.nft(t, "delete", "table", "inet", "crosswire")
	if err := m.RemoveRemote(pfx("10.244.4.0/24")); !errors.Is(err, ErrNotApplied) {
		t.Fatalf("RemoveRemote after the table was deleted = %v, want ErrNotApplied", err)
	}
}

func TestDrift(t *testing.T) {
	st := State{Local: pfx("10.244.1.0/24"), Remote: pfx("10.244.2.0/24", "10.244.3.0/24")}
	tests := []struct {
		name string
		cmd  []string
		want []string
	}{
		{"table deleted", []string{"delete table inet crosswire"}, []string{"table crosswire missing"}},
		{"chain flushed", []string{"flush chain inet crosswire prerouting"}, []string{
			`chain prerouting: rule "` + CommentTunnelIngress + `" missing`,
			`chain prerouting: rule "` + CommentEgress4 + `" missing`,
			`chain prerouting: rule "` + CommentEgress6 + `" missing`,
		}},
		{"chain deleted", []string{"delete chain inet crosswire prerouting"}, []string{"chain prerouting missing"}},
		{"element deleted", []string{"delete element inet crosswire remote4 { 10.244.2.0/24 }"}, []string{"set remote4: missing 10.244.2.0/24"}},
		{"element added", []string{"add element inet crosswire remote4 { 10.9.0.0/16 }"}, []string{"set remote4: unexpected 10.9.0.0/16"}},
		{"range added", []string{"add element inet crosswire local4 { 10.8.0.1-10.8.0.2 }"}, []string{"set local4: unexpected 10.8.0.1/32", "set local4: unexpected 10.8.0.2/32"}},
		{"foreign rule", []string{`add rule inet crosswire prerouting counter comment "hand-made"`}, []string{`chain prerouting: unexpected rule (handle N, comment "hand-made")`}},
		{"rule changed", []string{"flush chain inet crosswire prerouting",
			`add rule inet crosswire prerouting iifname "crosswire0" counter meta mark set mark & 0xffffcfff | 0x00001000 comment "` + CommentTunnelIngress + `"`,
			`add rule inet crosswire prerouting ip saddr @local4 ip daddr @remote4 counter meta mark set mark & 0xffffefff | 0x00001000 comment "` + CommentEgress4 + `"`,
			`add rule inet crosswire prerouting ip6 saddr @local6 ip6 daddr @remote6 counter meta mark set mark & 0xffffcfff | 0x00001000 comment "` + CommentEgress6 + `"`,
		}, []string{`chain prerouting: rule "` + CommentEgress4 + `" differs`}},
		{"rules reordered", []string{"flush chain inet crosswire prerouting",
			`add rule inet crosswire prerouting ip saddr @local4 ip daddr @remote4 counter meta mark set mark & 0xffffcfff | 0x00001000 comment "` + CommentEgress4 + `"`,
			`add rule inet crosswire prerouting iifname "crosswire0" counter meta mark set mark & 0xffffcfff | 0x00001000 comment "` + CommentTunnelIngress + `"`,
			`add rule inet crosswire prerouting ip6 saddr @local6 ip6 daddr @remote6 counter meta mark set mark & 0xffffcfff | 0x00001000 comment "` + CommentEgress6 + `"`,
		}, []string{"chain prerouting: rules out of order"}},
		{"forward chain deleted", []string{"delete chain inet crosswire forward"}, []string{"chain forward missing"}},
		{"clamp to a constant", []string{"flush chain inet crosswire forward",
			`add rule inet crosswire forward meta nfproto ipv4 oifname "crosswire0" tcp flags & (syn|rst) == syn counter tcp option maxseg size set 1000 comment "` + CommentMSSClamp4 + `"`,
			`add rule inet crosswire forward meta nfproto ipv6 oifname "crosswire0" tcp flags & (syn|rst) == syn counter tcp option maxseg size set rt mtu comment "` + CommentMSSClamp6 + `"`,
		}, []string{`chain forward: rule "` + CommentMSSClamp4 + `" differs`}},
		{"set deleted", []string{"flush chain inet crosswire prerouting", "delete set inet crosswire remote6"}, []string{
			"set remote6 missing",
			`chain prerouting: rule "` + CommentTunnelIngress + `" missing`,
			`chain prerouting: rule "` + CommentEgress4 + `" missing`,
			`chain prerouting: rule "` + CommentEgress6 + `" missing`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNS(t)
			m := newTestManager(t, ns)
			if err := m.Apply(st); err != nil {
				t.Fatal(err)
			}
			assertNoDrift(t, m, st)
			for _, c := range tt.cmd {
				ns.nft(t, c)
			}
			got, err := m.Drift(st)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i] = handleRE.ReplaceAllString(got[i], "handle N")
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Drift = %q\nwant    %q", got, tt.want)
			}
			// Apply repairs whatever drifted.
			if err := m.Apply(st); err != nil {
				t.Fatal(err)
			}
			assertNoDrift(t, m, st)
		})
	}
}

func TestDeleteOnlyOurTable(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	ns.nft(t, "add table ip other")
	ns.nft(t, "add chain ip other pre { type filter hook prerouting priority 0; }")
	ns.nft(t, "add rule ip other pre counter")
	ns.nft(t, "add table inet crosswire-other")
	other := ns.nft(t, "list table ip other")

	if err := m.Apply(testState()); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"crosswire", "crosswire-guard"} {
		if out, err := ns.try("nft", "list", "table", "inet", table); err == nil {
			t.Fatalf("table %s still present after Delete:\n%s", table, out)
		}
	}
	if got := ns.nft(t, "list", "table", "ip", "other"); got != other {
		t.Fatalf("table ip other changed:\n%s\n---\n%s", other, got)
	}
	ns.nft(t, "list table inet crosswire-other")
	if err := m.Delete(); err != nil {
		t.Fatalf("Delete of a missing table: %v", err)
	}
	if d, err := m.Drift(testState()); err != nil || !slices.Equal(d, []string{"table crosswire missing", "table crosswire-guard missing"}) {
		t.Fatalf("Drift after Delete = %q, %v", d, err)
	}
}

func TestCountersKeyedByComment(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	if got, err := m.Counters(); err != nil || len(got) != 0 {
		t.Fatalf("Counters without table = %v, %v; want empty", got, err)
	}
	if err := m.Apply(testState()); err != nil {
		t.Fatal(err)
	}
	got, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Counter{CommentTunnelIngress: {}, CommentEgress4: {}, CommentEgress6: {}, CommentMSSClamp4: {}, CommentMSSClamp6: {}, CommentLeakGuard: {}, CommentGuard4: {}, CommentGuard6: {}}
	if len(got) != len(want) {
		t.Fatalf("Counters = %v, want keys %v", got, want)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("no counter for %q", k)
		}
	}
}

func TestClosedManagerRefuses(t *testing.T) {
	m, err := New(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(State{}); err == nil {
		t.Fatal("Apply after Close succeeded")
	}
}

// A cluster far larger than one default socket buffer holds in one batch
// (about 5000 IPv4 prefixes) is still applied in one transaction, read
// back in sync and updated incrementally.
func TestApplyLargerThanDefaultSocketBuffer(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	st := State{Local: pfx("10.244.0.0/24", "fd00:244::/64")}
	for i := range 8000 {
		st.Remote = append(st.Remote,
			netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(64 + i/256), byte(i % 256), 0}), 24),
			netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, 2: byte(i >> 8), 3: byte(i)}), 64))
	}
	if err := m.Apply(st); err != nil {
		t.Fatalf("Apply of %d remote prefixes: %v", len(st.Remote), err)
	}
	assertNoDrift(t, m, st)
	extra := pfx("10.200.0.0/24")
	if err := m.AddRemote(extra); err != nil {
		t.Fatal(err)
	}
	st.Remote = append(st.Remote, extra...)
	assertNoDrift(t, m, st)
}
