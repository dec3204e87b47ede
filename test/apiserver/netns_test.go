package apiserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/crosswire/crosswire/internal/testenv"
)

// netnsPair creates namespaces <prefix>-a and <prefix>-b joined by a veth,
// with 192.168.88.1/24 in a and .2/24 in b, and deletes them when the test
// ends. The random prefix keeps parallel runs apart; the addresses live only
// inside these namespaces, so they cannot clash with anything.
func netnsPair(t *testing.T) (a, b string) {
	t.Helper()
	testenv.RequireRoot(t, "creates network namespaces")
	testenv.RequireTools(t, "ip")
	var r [3]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	prefix := "cwapi-" + hex.EncodeToString(r[:]) // 12 chars: "-a" fits IFNAMSIZ
	a, b = prefix+"-a", prefix+"-b"
	for _, ns := range []string{a, b} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	ip(t, "link", "add", a, "netns", a, "type", "veth", "peer", "name", b, "netns", b)
	for _, x := range []struct{ ns, addr string }{{a, "192.168.88.1/24"}, {b, "192.168.88.2/24"}} {
		ip(t, "-n", x.ns, "addr", "add", x.addr, "dev", x.ns)
		ip(t, "-n", x.ns, "link", "set", x.ns, "up")
		ip(t, "-n", x.ns, "link", "set", "lo", "up")
	}
	return a, b
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func TestNetNS(t *testing.T) {
	nsA, nsB := netnsPair(t)
	start := time.Now()
	s := Start(t, Options{NetNS: nsA, BindAddress: netip.MustParseAddr("192.168.88.1")})
	t.Logf("ready in %v at %s inside %s", time.Since(start).Round(time.Millisecond), s.URL, nsA)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// A node agent in namespace b knows only a kubeconfig file.
	path := filepath.Join(t.TempDir(), "kubeconfig")
	s.Kubeconfig(t, s.AddUser(t, "crosswire-agent"), path)
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	cfg.Dial = DialerIn(nsB)
	agent := clientFor(t, cfg)
	body, err := agent.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil || string(body) != "ok" {
		t.Fatalf("/readyz from %s: %q, %v", nsB, body, err)
	}
	// The identity from the file is the unprivileged user, not the admin.
	if _, err := agent.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("unbound user listed nodes; want Forbidden")
	}

	// Admin dials inside namespace a itself, so it works from the test.
	if _, err := s.Client(t).CoreV1().Nodes().Create(ctx, newNode("node1", "10.244.1.0/24"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node as admin: %v", err)
	}

	// A real process in namespace b, if kubectl was built.
	kubectl := filepath.Join(DefaultToolsDir(), "kubectl")
	if _, err := os.Stat(kubectl); err == nil {
		adminPath := filepath.Join(t.TempDir(), "admin.kubeconfig")
		s.Kubeconfig(t, s.Admin, adminPath)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nsB, kubectl, "--kubeconfig", adminPath,
			"get", "nodes", "-o", "name").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "node/node1" {
			t.Fatalf("kubectl get nodes from %s: %v: %s", nsB, err, out)
		}
	}
}
