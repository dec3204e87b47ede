package realnodes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/test/kubecluster"
)

// TestChartPostQuantumOnRealNodes installs the chart with
// postQuantum.mode=required and a short rotation on real nodes: every
// agent publishes its exchange port, every pair agrees on a post-quantum
// key, the keys rotate, and pod and Service traffic, captured on the
// underlay across the rotations, is encrypted.
func TestChartPostQuantumOnRealNodes(t *testing.T) {
	const rotate = 5 * time.Second
	imgs := buildImages(t)
	c := kubecluster.New(t, kubecluster.Options{Nodes: 2, ProxyMode: "nftables", Sandbox: imgs.sandbox})
	repo := c.RegistryHost() + "/crosswire/crosswire"
	push(t, c, repo+":"+firstVersion, imgs.first)
	w := startWorkloads(t, c, repo+":"+firstVersion)

	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		pods, err := c.Client().CoreV1().Pods(releaseNS).List(context.Background(), metav1.ListOptions{LabelSelector: agentSelector})
		if err != nil {
			return
		}
		for _, p := range pods.Items {
			out, _ := c.Kubectl("-n", releaseNS, "logs", p.Name, "-c", "agent", "--tail", "40")
			t.Logf("agent log on %s:\n%s", p.Spec.NodeName, out)
		}
	})
	helm(t, c, "install", release, chartDir(), "--namespace", releaseNS, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+firstVersion,
		"--set", "postQuantum.mode=required", "--set", "postQuantum.rotate="+rotate.String(),
		"--wait", "--timeout", "3m")
	waitDaemonSetReady(t, c)
	checkAgents(t, c, repo+":"+firstVersion)
	for _, n := range c.Nodes {
		node, err := c.Client().CoreV1().Nodes().Get(context.Background(), n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := node.Annotations["crosswire.dev/pq-port"]; got != "51821" {
			t.Errorf("%s publishes crosswire.dev/pq-port %q, want the chart's 51821", n.Name, got)
		}
	}

	agreed := waitPQEpochs(t, c, nil, 4*rotate)
	t.Logf("post-quantum epochs after install: %v", agreed)
	cp := c.Net.StartCapture(t)
	if _, err := w.ExerciseUntil(convergeTimeout); err != nil {
		t.Fatal(err)
	}
	// Two rotations under traffic.
	rotated := waitPQEpochs(t, c, func(k string, ep uint64) bool { return ep >= agreed[k]+2 }, 4*rotate)
	if err := w.Exercise(); err != nil {
		t.Errorf("after two rotations: %v", err)
	}
	counts, err := cp.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("post-quantum epochs after two rotations: %v; underlay: %v", rotated, counts)
	if counts.Plaintext != 0 || counts.WireGuard == 0 {
		t.Fatalf("post-quantum on real nodes: %v; want 0 plaintext pod packets and WireGuard > 0", counts)
	}
	if counts.UDPDst[51821] == 0 {
		t.Error("no key exchange datagram on the underlay during two rotations")
	}
}

// waitPQEpochs waits until every agent reports every peer in state pq
// and ok (nil: any epoch) accepts its epoch, and returns the epochs by
// "node/peer". Agents are asked with `crosswire status -o json` in their
// pods, as an operator would.
func waitPQEpochs(t *testing.T, c *kubecluster.Cluster, ok func(k string, epoch uint64) bool, timeout time.Duration) map[string]uint64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		epochs, err := pqEpochs(c)
		if err == nil {
			for k, ep := range epochs {
				if ok != nil && !ok(k, ep) {
					err = fmt.Errorf("%s at epoch %d", k, ep)
				}
			}
		}
		if err == nil {
			return epochs
		}
		if time.Now().After(deadline) {
			t.Fatalf("post-quantum keys: %v", err)
		}
		time.Sleep(time.Second)
	}
}

func pqEpochs(c *kubecluster.Cluster) (map[string]uint64, error) {
	pods, err := c.Client().CoreV1().Pods(releaseNS).List(context.Background(), metav1.ListOptions{LabelSelector: agentSelector})
	if err != nil {
		return nil, err
	}
	epochs := map[string]uint64{}
	for _, p := range pods.Items {
		// Exit status 1 (unhealthy) still prints the report first.
		out, _ := c.Kubectl("-n", releaseNS, "exec", p.Name, "-c", "agent", "--", "/usr/local/bin/crosswire", "status", "-o", "json")
		var r agentstatus.Report
		if err := json.NewDecoder(strings.NewReader(out)).Decode(&r); err != nil {
			return nil, fmt.Errorf("status of %s: %v: %s", p.Spec.NodeName, err, out)
		}
		if len(r.Peers) != len(c.Nodes)-1 {
			return nil, fmt.Errorf("%s has %d peers", p.Spec.NodeName, len(r.Peers))
		}
		for _, peer := range r.Peers {
			if peer.PQ == nil || peer.PQ.State != "pq" {
				return nil, fmt.Errorf("%s: peer %s post-quantum state %+v", p.Spec.NodeName, peer.Name, peer.PQ)
			}
			epochs[p.Spec.NodeName+"/"+peer.Name] = peer.PQ.Epoch
		}
	}
	if len(epochs) != len(c.Nodes)*(len(c.Nodes)-1) {
		return nil, fmt.Errorf("epochs of %d node pairs, want %d", len(epochs), len(c.Nodes)*(len(c.Nodes)-1))
	}
	return epochs, nil
}
