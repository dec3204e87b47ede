package netcluster

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/internal/testenv"
)

func needRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t, "creates network namespaces")
}

// namespacesWithPrefix lists the named namespaces of one run.
func namespacesWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := run(nil, "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			got = append(got, f[0])
		}
	}
	return got
}

func processAlive(pid int) bool {
	return !dead(pid)
}

func TestLayout(t *testing.T) {
	c, err := layout(Options{Prefix: "cwt"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 3 || len(c.Nodes[0].Pods) != 2 {
		t.Fatalf("default shape %dx%d", len(c.Nodes), len(c.Nodes[0].Pods))
	}
	n2 := c.NodeByName("node2")
	if n2 == nil || n2.NS != "cwt-n2" || n2.UnderlayIP != netip.MustParseAddr("192.168.77.12") ||
		n2.PodCIDR != netip.MustParsePrefix("10.244.2.0/24") || n2.BridgeIP != netip.MustParseAddr("10.244.2.1") {
		t.Errorf("node2 = %+v", n2)
	}
	if p := n2.Pods[0]; p.NS != "cwt-n2p1" || p.IP != netip.MustParseAddr("10.244.2.10") || p.Node != n2 {
		t.Errorf("node2 pod1 = %+v", p)
	}
	if c.Backend != n2.Pods[0] || c.BackendAddr.String() != "10.244.2.10:8080" || c.ServiceVIP.String() != "10.96.0.10:80" {
		t.Errorf("service %v -> %v", c.ServiceVIP, c.BackendAddr)
	}
	if c.Underlay != "cwt-ul" || len(c.Namespaces()) != 1+3+6 {
		t.Errorf("namespaces %v", c.Namespaces())
	}
	for _, o := range []Options{
		{Nodes: -1}, {Nodes: 201}, {PodsPerNode: 300},
		{ServiceBackend: [2]int{4, 1}}, {ServiceBackend: [2]int{1, 3}},
		{Prefix: "Bad_Prefix"}, {Prefix: "averyveryverylongprefix"},
	} {
		if _, err := layout(o); err == nil {
			t.Errorf("layout(%+v): no error", o)
		}
	}
	a, _ := layout(Options{})
	b, _ := layout(Options{})
	if a.Prefix == b.Prefix || !strings.HasPrefix(a.Prefix, "cw") || len(a.Prefix) != 6 {
		t.Errorf("random prefixes %q %q", a.Prefix, b.Prefix)
	}
}

func TestCluster(t *testing.T) {
	needRoot(t)
	start := time.Now()
	c := New(t, Options{})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("building 3x2 took %v", d)
	}
	n1, n2 := c.Nodes[0], c.Nodes[1]

	t.Run("rp_filter", func(t *testing.T) {
		for _, n := range c.Nodes {
			for _, key := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.eth0.rp_filter", "net.ipv4.conf.cbr0.rp_filter", "net.ipv4.ip_forward"} {
				out, err := Exec(n.NS, "sysctl", "-n", key)
				if err != nil {
					t.Fatal(err)
				}
				if strings.TrimSpace(out) != "1" {
					t.Errorf("%s %s = %q, want 1", n.Name, key, out)
				}
			}
		}
	})

	t.Run("same node ping", func(t *testing.T) {
		if err := n1.Pods[0].Ping(n1.Pods[1].IP, 2); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cross node ping is plaintext on the underlay", func(t *testing.T) {
		cp := c.StartCapture(t)
		if err := n1.Pods[0].Ping(n2.Pods[1].IP, 3); err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(c.Nodes[2].Pods[0].NS, n1.Pods[1].IP, 2); err != nil {
			t.Fatal(err)
		}
		counts, err := cp.Stop()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("capture: %v", counts)
		// 5 requests and 5 replies, each crossing the bridge once.
		if counts.Plaintext < 10 || counts.WireGuard != 0 {
			t.Errorf("want >= 10 plaintext and no WireGuard packets, got %v", counts)
		}
		if !strings.Contains(strings.Join(counts.PlaintextSamples, "|"), "10.244.1.10 > 10.244.2.11 icmp") {
			t.Errorf("samples %v lack the pod ping", counts.PlaintextSamples)
		}
	})

	t.Run("same node ping stays off the underlay", func(t *testing.T) {
		cp := c.StartCapture(t)
		if err := n2.Pods[0].Ping(n2.Pods[1].IP, 3); err != nil {
			t.Fatal(err)
		}
		counts, err := cp.Stop()
		if err != nil {
			t.Fatal(err)
		}
		if counts.Plaintext != 0 {
			t.Errorf("same-node traffic on the underlay: %v", counts)
		}
	})

	t.Run("node to pod and underlay", func(t *testing.T) {
		if err := c.Ping(n1.NS, n2.Pods[0].IP, 1); err != nil {
			t.Error(err)
		}
		if err := c.Ping(n1.NS, n2.UnderlayIP, 1); err != nil {
			t.Error(err)
		}
	})

	t.Run("service VIP reaches the backend", func(t *testing.T) {
		srv := ServeTCP(t, c.Backend.NS, c.BackendAddr)
		payload := []byte("hello through the service")
		client := n1.Pods[0]
		got, err := DialTCP(client.NS, c.ServiceVIP, payload, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) {
			t.Errorf("echo %q, want %q", got, payload)
		}
		// From the node itself (output hook) too.
		if got, err := DialTCP(c.Nodes[2].NS, c.ServiceVIP, payload, 5*time.Second); err != nil || !bytes.Equal(got, payload) {
			t.Errorf("from node3: %q, %v", got, err)
		}
		if srv.Conns() != 2 {
			t.Errorf("backend accepted %d connections, want 2", srv.Conns())
		}
		if p := srv.Peers(); len(p) < 1 || p[0].Addr() != client.IP {
			t.Errorf("backend saw peers %v, want %v first (no SNAT)", p, client.IP)
		}
	})

	t.Run("service VIP over UDP", func(t *testing.T) {
		srv := ServeUDP(t, c.Backend.NS, c.BackendAddr)
		payload := []byte("datagram through the service")
		got, err := ExchangeUDP(c.Nodes[2].Pods[1].NS, c.ServiceVIP, payload, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) || srv.Datagrams() != 1 {
			t.Errorf("echo %q after %d datagrams, want %q after 1", got, srv.Datagrams(), payload)
		}
	})

	t.Run("process", func(t *testing.T) {
		p, err := c.Start(n1.NS, "", "sh", "-c", "echo started; ip -o addr show dev eth0; exec sleep 60")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(100 * time.Millisecond); err == nil {
			t.Fatal("sleep exited early")
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(5 * time.Second); err == nil || !strings.Contains(err.Error(), "terminated") {
			t.Errorf("wait after SIGTERM: %v", err)
		}
		if log := p.Log(); !strings.Contains(log, "started") || !strings.Contains(log, n1.UnderlayIP.String()) {
			t.Errorf("log %q lacks output from inside %s", log, n1.NS)
		}
	})

	t.Run("dirs", func(t *testing.T) {
		for _, n := range c.Nodes {
			for _, d := range []string{n.StateDir, n.SocketDir} {
				if st, err := os.Stat(d); err != nil || !st.IsDir() || !strings.HasPrefix(d, c.Root) {
					t.Errorf("%s dir %s: %v", n.Name, d, err)
				}
			}
		}
	})

	// Close, then check that nothing is left.
	sleeper, err := c.Start(c.Nodes[2].NS, "", "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	// A grandchild that leaves the process group is found in its namespace.
	escaper, err := c.Start(c.Nodes[2].Pods[1].NS, "", "sh", "-c", "setsid sleep 301 & echo $! ; wait")
	if err != nil {
		t.Fatal(err)
	}
	escaped := waitForPID(t, escaper)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if left := namespacesWithPrefix(t, c.Prefix); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	for _, pid := range []int{sleeper.Pid(), escaper.Pid(), escaped} {
		if processAlive(pid) {
			t.Errorf("process %d alive after Close", pid)
		}
	}
	if _, err := os.Stat(c.Root); !os.IsNotExist(err) {
		t.Errorf("root %s still there: %v", c.Root, err)
	}
	if _, err := c.Start(n1.NS, "", "true"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// waitForPID reads the pid a process printed as its first output line.
func waitForPID(t *testing.T, p *Process) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if line, _, ok := strings.Cut(p.Log(), "\n"); ok {
			var pid int
			for _, r := range line {
				pid = pid*10 + int(r-'0')
			}
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s printed no pid", p)
	return 0
}

func TestTwoClustersAtOnce(t *testing.T) {
	needRoot(t)
	a := New(t, Options{Nodes: 2, PodsPerNode: 1})
	b := New(t, Options{Nodes: 2, PodsPerNode: 1})
	if a.Prefix == b.Prefix {
		t.Fatalf("same prefix %q", a.Prefix)
	}
	for _, c := range []*Cluster{a, b} {
		if err := c.Nodes[0].Pods[0].Ping(c.Nodes[1].Pods[0].IP, 2); err != nil {
			t.Errorf("%s: %v", c.Prefix, err)
		}
	}
	// Same addresses, separate wires: a capture in one sees nothing of the
	// other.
	cp := a.StartCapture(t)
	if err := b.Nodes[0].Pods[0].Ping(b.Nodes[1].Pods[0].IP, 2); err != nil {
		t.Fatal(err)
	}
	counts, err := cp.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if counts.Plaintext != 0 {
		t.Errorf("capture in %s saw %s's traffic: %v", a.Prefix, b.Prefix, counts)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if len(namespacesWithPrefix(t, a.Prefix)) != 0 || len(namespacesWithPrefix(t, b.Prefix)) != 1+2+2 {
		t.Errorf("closing %s disturbed %s", a.Prefix, b.Prefix)
	}
}

// A build that fails half-way (a namespace name is taken) must leave the
// other run's namespace alone and remove everything it created itself.
func TestPartialBuildFailure(t *testing.T) {
	needRoot(t)
	c, err := layout(Options{Nodes: 2, PodsPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	taken := c.Nodes[1].NS
	if _, err := run(nil, "ip", "netns", "add", taken); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = run(nil, "ip", "netns", "delete", taken) })
	if err := c.build(); err == nil {
		t.Fatal("build succeeded over a taken namespace")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if left := namespacesWithPrefix(t, c.Prefix); len(left) != 1 || left[0] != taken {
		t.Errorf("after failed build and Close: %v, want only %s", left, taken)
	}
	if _, err := os.Stat(c.Root); !os.IsNotExist(err) {
		t.Errorf("root %s still there: %v", c.Root, err)
	}
}

// Run with NETCLUSTER_FAIL=1 to check by hand that a failing test still
// cleans up (ip netns list afterwards).
func TestDeliberateFailure(t *testing.T) {
	if os.Getenv("NETCLUSTER_FAIL") == "" {
		t.Skip("set NETCLUSTER_FAIL=1")
	}
	c := New(t, Options{Nodes: 2, PodsPerNode: 1})
	if _, err := c.Start(c.Nodes[0].NS, "", "sleep", "300"); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("deliberate failure; prefix %s", c.Prefix)
}

func TestDo(t *testing.T) {
	needRoot(t)
	c := New(t, Options{Nodes: 1, PodsPerNode: 1})
	var inside, outside string
	if err := Do(c.Nodes[0].Pods[0].NS, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/dev")
		inside = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/thread-self/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	outside = string(b)
	if !strings.Contains(inside, "eth0") || strings.Contains(inside, "cbr0") {
		t.Errorf("inside the pod: %s", inside)
	}
	if inside == outside {
		t.Error("Do did not switch namespaces")
	}
	if err := Do(c.Prefix+"-missing", func() error { return nil }); err == nil {
		t.Error("Do into a missing namespace succeeded")
	}
}
