package kubecluster

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/crosswire/crosswire/internal/testenv"
)

func TestGuardProblems(t *testing.T) {
	g := &HostGuard{
		links:  []string{"lo (device)", "eth0 (device)"},
		routes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.17.0.0/16")},
	}
	if p := guardProblems(g, g.links, g.routes); len(p) != 0 {
		t.Errorf("unchanged host (its own 10.0.0.0/8 towards its LAN is fine): %v", p)
	}
	p := guardProblems(g, append(g.links, "veth1 (veth)"), []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"),
		netip.MustParsePrefix("10.0.0.0/8"),      // was there: the host's
		netip.MustParsePrefix("10.244.3.0/24"),   // a pod CIDR
		netip.MustParsePrefix("10.96.0.0/12"),    // new, covers the Services
		netip.MustParsePrefix("192.168.77.2/32"), // the API server
		netip.MustParsePrefix("fd00:10:244:1::/64"),
		netip.MustParsePrefix("192.168.1.0/24"), // the host's LAN
	})
	want := []string{"new link veth1 (veth)", "10.244.3.0/24", "10.96.0.0/12", "192.168.77.2/32", "fd00:10:244:1::/64"}
	joined := strings.Join(p, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("problems %q lack %q", p, w)
		}
	}
	for _, bad := range []string{"192.168.1.0/24", "10.0.0.0/8", "0.0.0.0/0"} {
		if strings.Contains(joined, bad) {
			t.Errorf("problems %q name %s, which is the host's own", p, bad)
		}
	}
}

// The host this test runs on is not linked to any cluster.
func TestHostGuardOnThisHost(t *testing.T) {
	testenv.RequireRoot(t, "reads the host's routes")
	g, err := NewHostGuard()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Check(); err != nil {
		t.Fatal(err)
	}
}
