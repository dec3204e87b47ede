package realnodes

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/test/kubecluster"
)

// TestChartWithIPTablesKubeProxy runs the chart beside kube-proxy in
// iptables mode, and first without NET_ADMIN: the agent must say what is
// missing instead of failing somewhere deep in the datapath.
func TestChartWithIPTablesKubeProxy(t *testing.T) {
	imgs := buildImages(t)
	c := kubecluster.New(t, kubecluster.Options{Nodes: 2, ProxyMode: "iptables", Sandbox: imgs.sandbox})
	repo := c.RegistryHost() + "/crosswire/crosswire"
	push(t, c, repo+":"+firstVersion, imgs.first)
	w := startWorkloads(t, c, repo+":"+firstVersion)

	helm(t, c, "install", release, chartDir(), "--namespace", releaseNS, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+firstVersion,
		"--set-json", `securityContext.capabilities={"add":[],"drop":["ALL"]}`)
	msg := waitAgentLog(t, c, "NET_ADMIN")
	t.Logf("without NET_ADMIN the agent says: %s", msg)

	helm(t, c, "upgrade", release, chartDir(), "--namespace", releaseNS, "--reuse-values",
		"--set-json", `securityContext.capabilities={"add":["NET_ADMIN"],"drop":["ALL"]}`, "--wait", "--timeout", "3m")
	waitDaemonSetReady(t, c)
	checkAgents(t, c, repo+":"+firstVersion)
	encrypted(t, c, w, "with kube-proxy in iptables mode")
	for _, n := range c.Nodes {
		out, err := n.Exec("iptables-save", "-t", "nat")
		if err != nil || !strings.Contains(out, "KUBE-SERVICES") {
			t.Errorf("%s: kube-proxy's iptables rules missing: %v\n%s", n.Name, err, out)
		}
	}
}

// waitAgentLog waits until an agent container's log (current or previous
// run) holds want and returns that line.
func waitAgentLog(t *testing.T, c *kubecluster.Cluster, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		pods, err := c.Client().CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
		if err == nil {
			for _, p := range pods.Items {
				for _, prev := range []bool{false, true} {
					args := []string{"-n", releaseNS, "logs", p.Name, "-c", "agent"}
					if prev {
						args = append(args, "--previous")
					}
					out, _ := c.Kubectl(args...)
					for _, line := range strings.Split(out, "\n") {
						if strings.Contains(line, want) {
							return line
						}
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no agent log line with %q", want)
		case <-time.After(time.Second):
		}
	}
}
