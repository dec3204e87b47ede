package realnodes

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/kubecluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

const (
	release       = "crosswire"
	releaseNS     = "crosswire"
	keyAnnotation = "crosswire.dev/public-key"
	agentSelector = "app.kubernetes.io/name=crosswire"
)

// startWorkloads starts the pods and Service traffic runs through.
func startWorkloads(t *testing.T, c *kubecluster.Cluster, image string) *kubecluster.Workloads {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w, err := c.StartWorkloads(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// TestChartOnRealNodes installs the chart on three real nodes (kube-proxy
// in nftables mode) from the cluster's registry and walks a user's life
// with it: install, traffic, status/logs/metrics, an upgrade to another
// image under traffic, a node reboot, cleanup mode and uninstall.
func TestChartOnRealNodes(t *testing.T) {
	imgs := buildImages(t)
	c := kubecluster.New(t, kubecluster.Options{Nodes: 3, ProxyMode: "nftables", Sandbox: imgs.sandbox})
	repo := c.RegistryHost() + "/crosswire/crosswire"
	push(t, c, repo+":"+firstVersion, imgs.first)
	second := push(t, c, repo+":"+secondVersion, imgs.second)
	w := startWorkloads(t, c, repo+":"+firstVersion)

	// Without crosswire, the same traffic crosses in clear: the capture
	// sees pod packets, so its zero later means something.
	cp := c.Net.StartCapture(t)
	if err := w.Exercise(); err != nil {
		t.Errorf("before install: %v", err)
	}
	counts, err := cp.Stop()
	if err != nil || counts.Plaintext == 0 {
		t.Fatalf("before install: %v, %v; want plaintext pod packets on the underlay", counts, err)
	}
	t.Logf("before install: %v", counts)

	installed := time.Now()
	helm(t, c, "install", release, chartDir(), "--namespace", releaseNS, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+firstVersion, "--wait", "--timeout", "3m")
	waitDaemonSetReady(t, c)
	t.Logf("helm install: DaemonSet ready on %d nodes in %v", len(c.Nodes), time.Since(installed).Round(time.Millisecond))
	keys := checkAgents(t, c, repo+":"+firstVersion)
	encrypted(t, c, w, "after install")

	t.Run("node-identity policy", func(t *testing.T) { checkNodeIdentityPolicy(t, c) })
	t.Run("no failed probes", func(t *testing.T) { noUnhealthyEvents(t, c) })
	t.Run("status, logs and metrics", func(t *testing.T) { observe(t, c, firstVersion) })

	t.Run("upgrade under traffic", func(t *testing.T) {
		pingers := crossPingers(t, w)
		cp := c.Net.StartCapture(t)
		start := time.Now()
		helm(t, c, "upgrade", release, chartDir(), "--namespace", releaseNS, "--reuse-values",
			"--set", "image.digest="+digestOf(second), "--wait", "--timeout", "3m")
		// helm's --wait lets maxUnavailable pods still be starting.
		waitDaemonSetReady(t, c)
		end := time.Now()
		time.Sleep(time.Second) // replies after the last restart
		for _, p := range pingers {
			p.Stop()
			gap := netcluster.LongestGap(p.Replies, start, end)
			t.Logf("%s: %d replies to %d echo requests during the %v rollout; longest gap %v",
				p.Name, len(p.Replies), p.Sent, end.Sub(start).Round(time.Millisecond), gap.Round(time.Millisecond))
			if gap > upgradeBlackoutBound {
				t.Errorf("%s: no replies for %v during the upgrade (bound %v)", p.Name, gap, upgradeBlackoutBound)
			}
		}
		counts, err := cp.Stop()
		if err != nil || counts.Plaintext != 0 || counts.WireGuard == 0 {
			t.Fatalf("during the upgrade: %v, %v; want 0 plaintext and WireGuard", counts, err)
		}
		t.Logf("upgrade: %v", counts)
		if got := checkAgents(t, c, second); !sameKeys(got, keys) {
			t.Errorf("keys changed across the upgrade: %v -> %v", keys, got)
		}
		observe(t, c, secondVersion)
	})

	t.Run("node reboot", func(t *testing.T) {
		n := c.Nodes[1]
		rebooted := time.Now()
		if err := c.RebootNode(n); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		waitAgentRestarted(ctx, t, c, n.Name, rebooted)
		t.Logf("%s: agent ready again %v after the reboot", n.Name, time.Since(rebooted).Round(time.Millisecond))
		if got := checkAgents(t, c, ""); !sameKeys(got, keys) {
			t.Errorf("keys changed across the reboot of %s: %v -> %v", n.Name, keys, got)
		}
		// The node's pods got new sandboxes: new namespaces, maybe new
		// addresses.
		if err := w.Readopt(ctx, n.Name); err != nil {
			t.Fatal(err)
		}
		encrypted(t, c, w, "after the reboot of "+n.Name)
	})

	t.Run("cleanup mode and uninstall", func(t *testing.T) {
		helm(t, c, "upgrade", release, chartDir(), "--namespace", releaseNS, "--reuse-values",
			"--set", "cleanup.enabled=true", "--wait", "--timeout", "3m")
		// helm's --wait returns at once with maxUnavailable 100%; every
		// pod ready (its cleanup init container done) is the signal, as
		// `kubectl rollout status` shows it to users.
		waitDaemonSetReady(t, c)
		for _, n := range c.Nodes {
			nodeIsClean(t, n)
		}
		helm(t, c, "uninstall", release, "--namespace", releaseNS, "--wait", "--timeout", "2m")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for {
			pods, err := c.Client().CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{})
			if err == nil && len(pods.Items) == 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("pods left after helm uninstall: %v (%v)", pods, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
}

// upgradeBlackoutBound bounds the longest stretch without replies between
// two pods during a rolling upgrade: each node's agent is replaced in turn
// (old pod stopped, new one started, ready), and while a node has no agent
// its blackhole routes drop its pods' cross-node traffic.
const upgradeBlackoutBound = 15 * time.Second

// convergeTimeout bounds how long after agents start every flow must
// answer: two WireGuard handshake retries.
const convergeTimeout = 12 * time.Second

func chartDir() string { return filepath.Join(repoRoot(), "charts", "crosswire") }

func push(t *testing.T, c *kubecluster.Cluster, ref string, idx v1.ImageIndex) string {
	t.Helper()
	d, err := c.Push(ref, idx)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return d
}

func digestOf(ref string) string {
	_, d, _ := strings.Cut(ref, "@")
	return d
}

func helm(t *testing.T, c *kubecluster.Cluster, args ...string) string {
	t.Helper()
	out, err := c.Helm(args...)
	if err != nil {
		t.Fatalf("helm %s: %v", args[0], err)
	}
	return out
}

// encrypted sends the workloads' traffic under a capture and fails unless
// the underlay carried no plaintext pod packet and some WireGuard. Right
// after agents start, a peer may not know the other's key yet (its first
// handshake is retried after 5 s): the traffic is repeated until every flow
// answers, all of it under the capture.
func encrypted(t *testing.T, c *kubecluster.Cluster, w *kubecluster.Workloads, when string) {
	t.Helper()
	cp := c.Net.StartCapture(t)
	if d, err := w.ExerciseUntil(convergeTimeout); err != nil {
		t.Errorf("%s: %v", when, err)
	} else if d > 5*time.Second {
		t.Logf("%s: every flow answered after %v", when, d.Round(time.Millisecond))
	}
	counts, err := cp.Stop()
	if err != nil {
		t.Fatalf("%s: capture: %v", when, err)
	}
	if counts.Plaintext != 0 || counts.WireGuard == 0 {
		t.Fatalf("%s: %v; want 0 plaintext pod packets and WireGuard > 0", when, counts)
	}
	t.Logf("%s: %v", when, counts)
}

// checkAgents checks that every node runs a ready agent from image (any
// image when empty) and has published a key, all keys distinct; it
// returns the keys by node.
func checkAgents(t *testing.T, c *kubecluster.Cluster, image string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := c.Client()
	pods, err := cs.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
	if err != nil {
		t.Fatal(err)
	}
	onNode := map[string]bool{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		onNode[p.Spec.NodeName] = true
		if image != "" && p.Spec.Containers[0].Image != image {
			t.Errorf("agent pod %s runs %s, want %s", p.Name, p.Spec.Containers[0].Image, image)
		}
		if !podReady(&p) {
			t.Errorf("agent pod %s on %s is not ready", p.Name, p.Spec.NodeName)
		}
	}
	keys := map[string]string{}
	seen := map[string]string{}
	for _, n := range c.Nodes {
		if !onNode[n.Name] {
			t.Errorf("no agent pod on %s", n.Name)
		}
		node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		k := node.Annotations[keyAnnotation]
		if k == "" {
			t.Errorf("%s has no %s annotation", n.Name, keyAnnotation)
		}
		if other, dup := seen[k]; dup {
			t.Errorf("%s and %s publish the same key %s (shared state directory?)", n.Name, other, k)
		}
		seen[k], keys[n.Name] = n.Name, k
	}
	return keys
}

func sameKeys(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitDaemonSetReady waits until the agent runs, updated and ready, on
// every node.
func waitDaemonSetReady(t *testing.T, c *kubecluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.WaitDaemonSetReady(ctx, releaseNS, release); err != nil {
		t.Fatal(err)
	}
}

// waitAgentRestarted waits until the agent container on node was started
// after since and is ready.
func waitAgentRestarted(ctx context.Context, t *testing.T, c *kubecluster.Cluster, node string, since time.Time) {
	t.Helper()
	var last string
	for {
		pods, err := c.Client().CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{
			LabelSelector: agentSelector, FieldSelector: "spec.nodeName=" + node,
		})
		if err == nil {
			last = fmt.Sprintf("%d agent pods", len(pods.Items))
			for _, p := range pods.Items {
				for _, cs := range p.Status.ContainerStatuses {
					if cs.Name == "agent" && cs.Ready && cs.State.Running != nil && !cs.State.Running.StartedAt.Time.Before(since.Truncate(time.Second)) {
						return
					}
					last = fmt.Sprintf("%s: %+v", p.Name, cs.State)
				}
			}
		}
		if err := c.Alive(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("agent on %s not restarted and ready: %s (%v)", node, last, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// noUnhealthyEvents fails on any failed-probe Event of an agent pod: a
// normal start must not record one.
func noUnhealthyEvents(t *testing.T, c *kubecluster.Cluster) {
	events, err := c.Client().CoreV1().Events(releaseNS).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=Unhealthy"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		t.Errorf("event on %s: %s %s", e.InvolvedObject.Name, e.Reason, e.Message)
	}
}

// observe checks what an operator sees: `crosswire status` through
// kubectl exec (exit 0, every peer ok, the running version), the agent's
// JSON logs through kubectl logs, and Prometheus metrics through the pod's
// metrics port.
func observe(t *testing.T, c *kubecluster.Cluster, version string) {
	t.Helper()
	pods, err := c.Client().CoreV1().Pods(releaseNS).List(context.Background(), metav1.ListOptions{LabelSelector: agentSelector})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("agent pods: %v %v", pods, err)
	}
	p := pods.Items[0]
	out, err := c.Kubectl("-n", releaseNS, "exec", p.Name, "-c", "agent", "--", "/usr/local/bin/crosswire", "status")
	if err != nil {
		t.Errorf("kubectl exec crosswire status: %v", err)
	}
	t.Logf("kubectl exec %s -- crosswire status:\n%s", p.Name, out)
	if out, err := c.Kubectl("-n", releaseNS, "exec", p.Name, "-c", "agent", "--", "/usr/local/bin/crosswire", "version"); err != nil || !strings.Contains(out, version) {
		t.Errorf("crosswire version in %s: %q, %v; want %s", p.Name, out, err, version)
	}
	logs, err := c.Kubectl("-n", releaseNS, "logs", p.Name, "-c", "agent")
	if err != nil {
		t.Errorf("kubectl logs: %v", err)
	}
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var entry map[string]any
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		if entry["level"] == nil || entry["msg"] == nil {
			t.Errorf("log line without level or msg: %q", sc.Text())
		}
		lines++
	}
	if lines == 0 {
		t.Error("kubectl logs: no log lines")
	}
	port := 0
	for _, cp := range p.Spec.Containers[0].Ports {
		if cp.Name == "metrics" {
			port = int(cp.ContainerPort)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: apiserver.DialerIn(c.Net.Underlay)}}
	resp, err := client.Get(fmt.Sprintf("http://%s:%d/metrics", p.Status.PodIP, port))
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "crosswire_") {
		t.Errorf("scrape %s: %s, %d bytes without crosswire_ metrics", p.Status.PodIP, resp.Status, len(body))
	}
}

// crossPingers ping continuously between pods on different nodes, one
// pair per node pair in a ring.
func crossPingers(t *testing.T, w *kubecluster.Workloads) []*netcluster.Pinger {
	var ps []*netcluster.Pinger
	byNode := map[string]*kubecluster.Workload{}
	var order []string
	for _, p := range w.Pods {
		if _, ok := byNode[p.Node]; !ok {
			byNode[p.Node] = p
			order = append(order, p.Node)
		}
	}
	for i, n := range order {
		a, b := byNode[n], byNode[order[(i+1)%len(order)]]
		ps = append(ps, netcluster.StartPinger(t, a.Name+"->"+b.Name, a.NS, b.IP))
	}
	return ps
}

// nodeIsClean fails on any kernel object or socket crosswire leaves on a
// node after cleanup mode.
func nodeIsClean(t *testing.T, n *kubecluster.Node) {
	t.Helper()
	checks := []struct {
		argv []string
		bad  string
	}{
		{[]string{"nft", "list", "tables"}, "crosswire"},
		{[]string{"ip", "rule", "show"}, "lookup 202"},
		{[]string{"ip", "-6", "rule", "show"}, "lookup 202"},
		{[]string{"ip", "route", "show", "table", "all"}, "table 202"},
		{[]string{"ip", "link", "show"}, "crosswire0"},
	}
	for _, ch := range checks {
		out, err := n.Exec(ch.argv...)
		if err != nil {
			t.Errorf("%s: %s: %v", n.Name, strings.Join(ch.argv, " "), err)
		}
		if strings.Contains(out, ch.bad) {
			t.Errorf("%s after cleanup: %s shows %q:\n%s", n.Name, strings.Join(ch.argv, " "), ch.bad, out)
		}
	}
	for _, p := range []string{"/var/run/crosswire/status.sock", "/var/run/wireguard/crosswire0.sock"} {
		if _, err := os.Stat(n.HostPath(p)); err == nil {
			t.Errorf("%s after cleanup: %s still exists", n.Name, p)
		}
	}
	if _, err := os.Stat(n.HostPath("/var/lib/crosswire/private.key")); err != nil {
		t.Errorf("%s: cleanup must keep the key: %v", n.Name, err)
	}
}
