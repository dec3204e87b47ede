package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

const demoNodes = 3

func up(bin, prefix, dir string) error {
	start := time.Now()
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%s exists: a demo is running (or an earlier one failed); run `make demo-down` first", dir)
	}
	if left, _ := filepath.Glob("/var/run/netns/" + prefix + "-*"); len(left) > 0 {
		return fmt.Errorf("namespaces %s-* exist (an earlier demo?); run `make demo-down` first", prefix)
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("crosswire binary: %w (run `make build`)", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	st := &state{Prefix: prefix, Dir: dir, Bin: bin, Nodes: demoNodes}
	ctx := context.Background()
	failed := func(err error) error {
		return fmt.Errorf("%w\nlogs: %s (agents), %s (etcd, kube-apiserver); `make demo-down` removes everything", err, st.Root, st.apiDir())
	}

	fmt.Printf("crosswire demo: etcd + kube-apiserver, %d nodes x %d pods in network namespaces, one crosswire agent per node\n", demoNodes, podsPerNode)
	var c *netcluster.Cluster
	if err := step("network namespaces (underlay, nodes, pods)", func() (string, error) {
		c, err = netcluster.Build(netcluster.Options{Nodes: demoNodes, PodsPerNode: podsPerNode, Prefix: prefix})
		if err != nil {
			return "", err
		}
		st.Root = c.Root
		return fmt.Sprintf("%d namespaces %s-*", len(c.Namespaces()), prefix), st.save()
	}); err != nil {
		return err
	}
	var srv *apiserver.Server
	var admin kubernetes.Interface
	if err := step("etcd + kube-apiserver (on the underlay)", func() (string, error) {
		if srv, err = st.startAPIServer(c); err != nil {
			return "", err
		}
		admin, err = kubernetes.NewForConfig(srv.Admin)
		return srv.URL, err
	}); err != nil {
		return failed(err)
	}
	cw := st.agents(c, admin)
	if err := step("RBAC as the Helm chart installs it", func() (string, error) {
		if err := installRBAC(ctx, admin); err != nil {
			return "", err
		}
		return "ServiceAccount " + agentNamespace + "/" + agentAccount + ", ClusterRole crosswire", st.writeAgentKubeconfigs(ctx, srv, admin, cw, c.Nodes)
	}); err != nil {
		return failed(err)
	}
	if err := step("Node objects + one agent per node", func() (string, error) {
		if err := cw.StartNodes(c.Nodes...); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d agents", len(c.Nodes)), markReady(ctx, admin, c.Nodes)
	}); err != nil {
		return failed(err)
	}
	if err := step("keys published on Nodes, tunnels up", func() (string, error) {
		return "every node peers with the others", cw.WaitConverged()
	}); err != nil {
		return failed(err)
	}

	n1 := c.Nodes[0]
	fmt.Printf("\n--- agent on %s, with the Helm chart's flags (log: %s)\n", n1.Name, filepath.Join(c.Root, n1.Name+"-agent.log"))
	argv := cw.AgentArgs(n1)
	argv[0] = filepath.Base(argv[0])
	fmt.Println(wrap(argv, 100, "  ", "      "))

	fmt.Println("\n--- kubectl get nodes (annotations written by the agents)")
	out, err := st.kubectl("get", "nodes", "-o",
		`custom-columns=NODE:.metadata.name,POD-CIDR:.spec.podCIDR,ENDPOINT:.metadata.annotations.crosswire\.dev/endpoint,PUBLIC-KEY:.metadata.annotations.crosswire\.dev/public-key`)
	if err != nil {
		return failed(err)
	}
	fmt.Print(indent(out))

	fmt.Println()
	results, err := runFlows(cw)
	if err != nil {
		return failed(err)
	}
	printFlows(results)

	if err := printEvidence(st, cw); err != nil {
		return failed(err)
	}

	bad := 0
	for _, r := range results {
		if !r.ok {
			bad++
		}
	}
	if bad > 0 {
		fmt.Printf("\nVERDICT: FAIL (%d of %d flows not as designed)\n", bad, len(results))
	} else {
		fmt.Printf("\nVERDICT: PASS (%d flows as designed: cross-node pod traffic encrypted, local and node traffic unmarked)\n", len(results))
	}
	fmt.Printf("ready in %.0f s\n", time.Since(start).Seconds())
	printHelp(st, c)
	if bad > 0 {
		return fmt.Errorf("%d flows not as designed", bad)
	}
	return nil
}

// printEvidence shows node1 the way an operator would look at it.
func printEvidence(st *state, cw *cwcluster.Cluster) error {
	n1 := cw.Nodes[0]
	fmt.Printf("\n--- %s: crosswire status --status-socket %s\n", n1.Name, st.statusSocket(n1))
	out, err := exec.Command(st.Bin, "status", "--status-socket", st.statusSocket(n1)).CombinedOutput()
	switch {
	case strings.Contains(string(out), "unknown command"):
		fmt.Println("  (this crosswire build has no `status` command)")
	default:
		// An unhealthy report exits 1 but is still the evidence to show.
		fmt.Print(indent(string(out)))
	}
	_ = err

	fmt.Printf("\n--- %s: nft list table inet %s (comments say what each rule does)\n", n1.Name, cwcluster.NftTable)
	nftOut, err := netcluster.Exec(n1.NS, "nft", "list", "table", "inet", cwcluster.NftTable)
	if err != nil {
		return err
	}
	fmt.Print(indent(strings.ReplaceAll(trimSets(nftOut), "\t", "  ")))

	fmt.Printf("\n--- %s: wg show %s\n", n1.Name, cw.Iface(n1))
	wgOut, err := cw.WG(n1, "show", cw.Iface(n1))
	if err != nil {
		return err
	}
	fmt.Print(indent(wgOut))
	return nil
}

// kubectl runs the cached kubectl through the demo's wrapper.
func (st *state) kubectl(args ...string) (string, error) {
	out, err := exec.Command(st.kubectlWrapper(), args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// trimSets keeps the listing short: sets are shown by their comment and
// elements, empty sets (IPv6 on this IPv4 cluster) not at all.
func trimSets(s string) string {
	var out, set []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "set "):
			set = []string{l}
		case set != nil && t == "}":
			if len(set) > 2 { // more than the comment: it has elements
				out = append(append(out, set...), l)
			}
			set = nil
		case set != nil:
			if !strings.HasPrefix(t, "type ") && !strings.HasPrefix(t, "flags ") {
				set = append(set, l)
			}
		case t != "":
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// indent indents every non-empty line by two spaces.
func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if l != "" {
			b.WriteString("  ")
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// wrap joins words into lines of at most width columns, the first line
// prefixed by first and the others by rest.
func wrap(words []string, width int, first, rest string) string {
	var b strings.Builder
	line := first
	for i, w := range words {
		if i > 0 && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = rest + w
			continue
		}
		if i > 0 {
			line += " "
		}
		line += w
	}
	b.WriteString(line)
	return b.String()
}

func printHelp(st *state, c *netcluster.Cluster) {
	n1 := c.Nodes[0]
	p := n1.Pods[0]
	self, down := "go run ./test/demo", "make demo-down"
	if st.Dir != defaultState {
		self += " -state " + st.Dir
		down += " DEMO_FLAGS='-state " + st.Dir + "'"
	}
	fmt.Printf(`
The cluster keeps running. Things to try (as root):
  a shell on node1 / in a pod     ip netns exec %[1]s bash   /   ip netns exec %[2]s bash   (%[3]s)
  every node's tunnel             wg show     (userspace WireGuard: sockets in %[4]s)
  node1's counters, live          watch -n1 ip netns exec %[1]s nft list table inet crosswire
  traffic to watch them by        ip netns exec %[2]s ping %[5]s
  the wire between nodes          ip netns exec %[6]s tcpdump -ni br0     (pod to pod: only UDP 51820)
  the API server                  %[7]s get nodes -o wide
                                  (= ip netns exec %[6]s %[8]s --kubeconfig %[9]s)
  node1's agent                   %[10]s status --status-socket %[11]s
                                  tail -f %[12]s
  add a node (joins via the API)  %[13]s add-node
Remove everything: %[14]s
`, n1.NS, p.NS, p.IP, cwcluster.HostSocketDir, c.Nodes[1].Pods[0].IP, c.Underlay,
		st.kubectlWrapper(), kubectlPath(), st.adminKubeconfig(),
		st.Bin, st.statusSocket(n1), filepath.Join(c.Root, n1.Name+"-agent.log"), self, down)
}
