package nft

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

func newStrictManager(t *testing.T, ns *testNS, strict bool) *Manager {
	t.Helper()
	cfg := validConfig()
	cfg.Strict = strict
	m, err := New(cfg, WithNetNS(ns.fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestStrictDrift: the kernel accepts the strict rules, reads them back
// equal, and Drift notices when they are missing or present by mistake.
func TestStrictDrift(t *testing.T) {
	ns := newNS(t)
	st := State{Local: pfx("10.244.1.0/24", "fd00:1::/64"), Remote: pfx("10.244.2.0/24", "fd00:2::/64")}
	strict := newStrictManager(t, ns, true)
	if err := strict.Apply(st); err != nil {
		t.Fatal(err)
	}
	assertNoDrift(t, strict, st)
	out := ns.nft(t, "list chain inet crosswire prerouting")
	for _, want := range []string{
		`iifname != "crosswire0" ip saddr @remote4 ip daddr @local4 counter packets 0 bytes 0 drop comment "` + CommentStrictIngress4 + `"`,
		`iifname != "crosswire0" ip6 saddr @remote6 ip6 daddr @local6 counter packets 0 bytes 0 drop comment "` + CommentStrictIngress6 + `"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nft lists no %q in:\n%s", want, out)
		}
	}

	// The same table seen by a non-strict agent has two rules too many.
	plain := newStrictManager(t, ns, false)
	got, err := plain.Drift(st)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = handleRE.ReplaceAllString(got[i], "handle N")
	}
	want := []string{
		`chain prerouting: unexpected rule (handle N, comment "` + CommentStrictIngress4 + `")`,
		`chain prerouting: unexpected rule (handle N, comment "` + CommentStrictIngress6 + `")`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("non-strict Drift = %q\nwant %q", got, want)
	}

	// A deleted strict rule is drift for the strict agent, and Apply
	// repairs it.
	handle := handleRE.FindString(lineWith(ns.nft(t, "-a", "list chain inet crosswire prerouting"), CommentStrictIngress6))
	ns.nft(t, "delete rule inet crosswire prerouting "+handle)
	got, err = strict.Drift(st)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`chain prerouting: rule "` + CommentStrictIngress6 + `" missing`}; !slices.Equal(got, want) {
		t.Fatalf("strict Drift after delete = %q, want %q", got, want)
	}
	if err := strict.Apply(st); err != nil {
		t.Fatal(err)
	}
	assertNoDrift(t, strict, st)
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// TestStrictIngressInKernel sends real packets from a remote pod address
// to a local pod, once from the underlay and once out of the tunnel
// device (newForwardLab): the first is dropped and counted, the second
// reaches the pod.
func TestStrictIngressInKernel(t *testing.T) {
	lab := newForwardLab(t)
	node, under, tun := lab.node, lab.under, lab.tun
	st := State{Local: pfx("10.244.1.0/24"), Remote: pfx("10.244.2.0/24")}
	// Without strict the underlay path reaches the pod: the test proves
	// something. The pod's reply is marked for the tunnel, but this node
	// has no policy routing, as after another program deleted crosswire's
	// rule: the main table sends it to eth0, and a leak guard drops it
	// (crosswire's mark-based one or the guard table's, whichever runs
	// first: both hook forward at the same priority).
	nonStrict := newStrictManager(t, node, false)
	if err := nonStrict.Apply(st); err != nil {
		t.Fatal(err)
	}
	first := probeChain(t, node, "seen")
	if _, err := under.try("ping", "-c", "1", "-W", "1", "10.244.1.10"); err == nil {
		t.Error("non-strict: the pod's marked reply left by the underlay past the leak guard")
	}
	if got := probeChain(t, node, "seen")["from-underlay"] - first["from-underlay"]; got != 1 {
		t.Fatalf("non-strict: %d requests from the underlay reached the pod, want 1", got)
	}
	if c, err := nonStrict.Counters(); err != nil || c[CommentLeakGuard].Packets+c[CommentGuard4].Packets != 1 {
		t.Errorf("leak guards counted %v and %v (%v), want the 1 reply", c[CommentLeakGuard], c[CommentGuard4], err)
	}
	before := probeChain(t, node, "seen")
	m := newStrictManager(t, node, true)
	if err := m.Apply(st); err != nil {
		t.Fatal(err)
	}
	if _, err := under.try("ping", "-c", "1", "-W", "1", "10.244.1.10"); err == nil {
		t.Error("plaintext ping from a remote pod address over the underlay was answered")
	}
	if _, err := tun.try("ping", "-c", "1", "-W", "1", "10.244.1.10"); err != nil {
		t.Errorf("ping out of the tunnel: %v", err)
	}
	c, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if got := c[CommentStrictIngress4].Packets; got != 1 {
		t.Errorf("strict ingress rule counted %d packets, want 1", got)
	}
	probe := probeChain(t, node, "seen")
	for k := range probe {
		probe[k] -= before[k]
	}
	if probe["from-underlay"] != 0 || probe["from-tunnel"] != 1 {
		t.Errorf("forwarded: %v; want nothing from the underlay, 1 from the tunnel", probe)
	}
}

func probeChain(t *testing.T, ns *testNS, chain string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, m := range probeRE.FindAllStringSubmatch(ns.nft(t, "list chain ip probe "+chain), -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		out[m[2]] = n
	}
	return out
}
