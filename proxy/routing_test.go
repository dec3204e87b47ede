package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/crosswire/crosswire/internal/testenv"
)

// testNetns creates a named network namespace for one test and returns a
// netlink handle in it; everything is removed at cleanup, even on failure.
func testNetns(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	testenv.RequireRoot(t, "creates network namespaces")
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "cwpx-" + hex.EncodeToString(b)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close(); _ = netns.DeleteNamed(name) })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return name, h
}

func ipIn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return string(out)
}

func TestNetlinkRouterInNamespace(t *testing.T) {
	ns, h := testNetns(t)
	ipIn(t, ns, "tuntap", "add", "cw0", "mode", "tun")
	ipIn(t, ns, "link", "set", "cw0", "up")
	// A route of somebody else in our table must survive everything.
	ipIn(t, ns, "route", "add", "blackhole", "10.99.0.0/16", "table", "202")

	r := NewNetlinkRouter(testCfg, h)
	for i := 0; i < 2; i++ { // idempotent
		if _, err := r.EnsureRule(); err != nil {
			t.Fatal(err)
		}
	}
	rules := ipIn(t, ns, "rule", "show")
	if strings.Count(rules, "fwmark 0x1000/0x1000 lookup 202") != 1 || !strings.Contains(rules, "1200:") {
		t.Fatalf("rule not installed exactly once:\n%s", rules)
	}
	if !strings.Contains(ipIn(t, ns, "-6", "rule", "show"), "fwmark 0x1000/0x1000 lookup 202") {
		t.Fatal("IPv6 rule missing")
	}

	ps := []netip.Prefix{pfx("10.244.2.0/24"), pfx("10.244.3.0/24"), pfx("fd00:10:244:2::/64")}
	for i := 0; i < 2; i++ {
		if err := r.AddRoutes(ps); err != nil {
			t.Fatal(err)
		}
	}
	complete, present, err := r.Routes()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(complete, sortPrefixes(slices.Clone(ps))) || !slices.Equal(present, complete) {
		t.Fatalf("routes: complete %v present %v", complete, present)
	}
	table := ipIn(t, ns, "route", "show", "table", "202")
	for _, want := range []string{"10.244.2.0/24 dev cw0", "blackhole 10.244.2.0/24 proto 204 metric 4096"} {
		if !strings.Contains(table, want) {
			t.Fatalf("table 202 lacks %q:\n%s", want, table)
		}
	}

	// The device vanishes (the agent died): the blackhole must remain.
	ipIn(t, ns, "link", "del", "cw0")
	complete, present, err = r.Routes()
	if err != nil {
		t.Fatal(err)
	}
	if len(complete) != 0 || len(present) != len(ps) {
		t.Fatalf("after device loss: complete %v present %v", complete, present)
	}
	// The kernel answers a route query that hits a blackhole with EINVAL;
	// without the blackhole it would say "Network is unreachable" here.
	got, _ := exec.Command("ip", "-n", ns, "route", "get", "10.244.2.10", "mark", "0x1000").CombinedOutput()
	if !strings.Contains(string(got), "Invalid argument") {
		t.Fatalf("marked packet not blackholed without the tunnel: %s", got)
	}

	ipIn(t, ns, "tuntap", "add", "cw0", "mode", "tun")
	ipIn(t, ns, "link", "set", "cw0", "up")
	if err := r.AddRoutes(ps); err != nil {
		t.Fatal(err)
	}
	// Somebody else's route under one of our prefixes, another metric.
	ipIn(t, ns, "route", "add", "blackhole", "10.244.2.0/24", "table", "202", "metric", "7")
	// Half of a prefix's pair already gone must not stop the rest.
	ipIn(t, ns, "route", "del", "10.244.3.0/24", "dev", "cw0", "table", "202")
	// Deleting the v4 and v6 prefixes, one of them twice, and one never added.
	del := []netip.Prefix{ps[0], ps[2], ps[0], pfx("10.244.9.0/24"), ps[1]}
	if err := r.DelRoutes(del); err != nil {
		t.Fatal(err)
	}
	if complete, present, err = r.Routes(); err != nil || len(complete)+len(present) != 0 {
		t.Fatalf("after DelRoutes: complete %v present %v err %v", complete, present, err)
	}
	if table = ipIn(t, ns, "route", "show", "table", "202"); !strings.Contains(table, "blackhole 10.244.2.0/24 metric 7") {
		t.Fatalf("DelRoutes removed a foreign route under our prefix:\n%s", table)
	}
	ipIn(t, ns, "route", "del", "blackhole", "10.244.2.0/24", "table", "202", "metric", "7")
	if err := r.AddRoutes(ps); err != nil {
		t.Fatal(err)
	}
	if err := r.DelRoutes(ps[:1]); err != nil {
		t.Fatal(err)
	}
	if complete, present, _ = r.Routes(); slices.Contains(present, ps[0]) || len(complete) != 2 {
		t.Fatalf("DelRoutes: complete %v present %v", complete, present)
	}

	if err := r.DeleteAll(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(ipIn(t, ns, "rule", "show"), "lookup 202") {
		t.Fatal("rule left after DeleteAll")
	}
	table = ipIn(t, ns, "route", "show", "table", "202")
	if strings.TrimSpace(table) != "blackhole 10.99.0.0/16" {
		t.Fatalf("DeleteAll touched foreign routes or left ours:\n%s", table)
	}
}

func TestEnsureSysctls(t *testing.T) {
	root := t.TempDir()
	path := root + "/net/ipv4/conf/all"
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"/src_valid_mark", []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := EnsureSysctls(root)
	if err != nil || len(changed) != 1 {
		t.Fatalf("changed %v err %v", changed, err)
	}
	if b, _ := os.ReadFile(path + "/src_valid_mark"); strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("not written: %q", b)
	}
	if changed, err = EnsureSysctls(root); err != nil || len(changed) != 0 {
		t.Fatalf("second call changed %v err %v", changed, err)
	}
}
