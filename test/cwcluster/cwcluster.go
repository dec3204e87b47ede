// Package cwcluster runs crosswire agents on a netcluster: one agent per
// node namespace, fed from a Kubernetes NodeList file, with the helpers an
// operator would use to look at the result (nft counters, wg show). The
// end-to-end tests and the demo share it.
package cwcluster

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/test/netcluster"
)

// Defaults the agents run with; tests and the demo read them back.
const (
	Iface      = "crosswire0"
	ListenPort = 51820
	Table      = 202
	NftTable   = "crosswire"
	// NftGuardTable is the guard table the agents program beside NftTable.
	NftGuardTable = NftTable + "-guard"
	DefaultSync   = time.Second
	// HostSocketDir is where `wg` looks for userspace devices.
	HostSocketDir = "/var/run/wireguard"
	// MetricsPort serves /metrics, /healthz and /readyz in every node's
	// namespace (each has its own network stack).
	MetricsPort = 9763
	// A first handshake initiation sent before the peer listens is retried
	// only after WireGuard's 5 s rekey timeout, maybe more than once.
	convergeWait = 45 * time.Second
)

// Cluster is a netcluster with crosswire agents.
type Cluster struct {
	*netcluster.Cluster
	Bin       string // the crosswire binary
	NodesFile string
	Resync    time.Duration
	ExtraArgs []string // appended to every agent's flags
	// HostSockets puts every node's UAPI socket in the host's
	// /var/run/wireguard, with a per-node interface name, so a plain `wg
	// show` on the host lists every node (the demo). Tests leave it off
	// and keep each node's socket in its own directory.
	HostSockets bool
	// IfaceName, when set, names node n's tunnel device (and so its UAPI
	// socket) instead of the defaults above: the demo gives each run its
	// own names, since HostSockets shares one socket directory.
	IfaceName func(n *netcluster.Node) string
	// AgentFlags, when set, replaces the flags AgentArgs puts after the
	// node name and the Node source (the demo passes the Helm chart's);
	// ExtraArgs still follow.
	AgentFlags func(n *netcluster.Node) []string
	// Kube, when set, makes agents read Nodes from an API server instead
	// of NodesFile.
	Kube *KubeSource
	// PQPort, when set, is published as every node's
	// crosswire.dev/pq-port in the NodeList (agents with --post-quantum
	// on or required; --pq-port must match); with PQNode set, only on the
	// nodes it selects.
	PQPort uint16
	PQNode func(n *netcluster.Node) bool
	// NodeArgs, when set, are appended to node n's agent flags after
	// ExtraArgs.
	NodeArgs func(n *netcluster.Node) []string
	Keys     map[string]string // node name -> public key
	Agents   map[string]*netcluster.Process
}

// Start creates every node's key, writes the NodeList and starts one agent
// per node. It does not wait for convergence (see WaitConverged).
func Start(c *netcluster.Cluster, bin string, resync time.Duration, extra ...string) (*Cluster, error) {
	return New(c, bin, resync, extra...).StartAgents()
}

// New prepares agents for c without starting them, so callers can adjust
// the fields first.
func New(c *netcluster.Cluster, bin string, resync time.Duration, extra ...string) *Cluster {
	if resync <= 0 {
		resync = DefaultSync
	}
	return &Cluster{Cluster: c, Bin: bin, NodesFile: filepath.Join(c.Root, "nodes.yaml"), Resync: resync,
		ExtraArgs: extra, Keys: map[string]string{}, Agents: map[string]*netcluster.Process{}}
}

// StartAgents creates keys, registers or writes the Nodes and starts an
// agent on every node of the cluster.
func (cw *Cluster) StartAgents() (*Cluster, error) {
	return cw, cw.StartNodes(cw.Nodes...)
}

// StartNodes does the same for some nodes only (others can join later).
// In file mode the NodeList then lists exactly the started nodes.
func (cw *Cluster) StartNodes(nodes ...*netcluster.Node) error {
	for _, n := range nodes {
		k, err := cw.PublicKey(n)
		if err != nil {
			return err
		}
		cw.Keys[n.Name] = k
	}
	if cw.Kube != nil {
		for _, n := range nodes {
			if err := cw.RegisterNode(context.Background(), n); err != nil {
				return err
			}
		}
	} else if err := cw.WriteNodes(cw.running(nodes)); err != nil {
		return err
	}
	for _, n := range nodes {
		if _, err := cw.StartAgent(n); err != nil {
			return err
		}
	}
	return nil
}

// running lists the nodes that have an agent, plus extra, in cluster order.
func (cw *Cluster) running(extra []*netcluster.Node) []*netcluster.Node {
	var out []*netcluster.Node
	for _, n := range cw.Nodes {
		if cw.Agents[n.Name] != nil || slices.Contains(extra, n) {
			out = append(out, n)
		}
	}
	return out
}

// PublicKey runs `crosswire pubkey` for a node (creating its key).
func (cw *Cluster) PublicKey(n *netcluster.Node) (string, error) {
	out, err := netcluster.Exec(n.NS, cw.Bin, "pubkey", "--state-dir", n.StateDir)
	if err != nil {
		return "", fmt.Errorf("crosswire pubkey on %s: %w", n.Name, err)
	}
	return strings.TrimSpace(out), nil
}

// Node returns the Node object the API server would hold for n, with
// crosswire's annotations when n has a key.
func (cw *Cluster) Node(n *netcluster.Node) corev1.Node {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	node := corev1.Node{
		TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              n.Name,
			CreationTimestamp: metav1.NewTime(base.Add(time.Duration(n.Index) * time.Minute)),
			Annotations:       map[string]string{},
		},
		Spec: corev1.NodeSpec{PodCIDR: n.PodCIDR.String()},
	}
	// Dual-stack Nodes list one CIDR and one InternalIP per family, the
	// primary family first.
	for _, p := range n.PodCIDRs() {
		node.Spec.PodCIDRs = append(node.Spec.PodCIDRs, p.String())
	}
	for _, a := range n.UnderlayIPs() {
		node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: a.String()})
	}
	node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: n.Name})
	if k := cw.Keys[n.Name]; k != "" {
		node.Annotations[controller.AnnotationPublicKey] = k
		node.Annotations[controller.AnnotationEndpoint] = netip.AddrPortFrom(n.UnderlayIP, ListenPort).String()
		if cw.PQPort != 0 && (cw.PQNode == nil || cw.PQNode(n)) {
			node.Annotations[controller.AnnotationPQPort] = fmt.Sprint(cw.PQPort)
		}
	}
	return node
}

// WriteNodes atomically replaces the NodeList the agents read.
func (cw *Cluster) WriteNodes(nodes []*netcluster.Node) error {
	list := corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}}
	for _, n := range nodes {
		list.Items = append(list.Items, cw.Node(n))
	}
	data, err := yaml.Marshal(list)
	if err != nil {
		return fmt.Errorf("encode NodeList: %w", err)
	}
	tmp := cw.NodesFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write NodeList: %w", err)
	}
	return os.Rename(tmp, cw.NodesFile)
}

// AgentArgs is the agent command line for node n.
func (cw *Cluster) AgentArgs(n *netcluster.Node) []string {
	source := []string{"--nodes-file", cw.NodesFile}
	if cw.Kube != nil {
		source = []string{"--kubeconfig", cw.Kube.Kubeconfigs[n.Name]}
	}
	args := append([]string{cw.Bin, "agent", "--node-name", n.Name}, source...)
	var perNode []string
	if cw.NodeArgs != nil {
		perNode = cw.NodeArgs(n)
	}
	if cw.AgentFlags != nil {
		return append(append(append(args, cw.AgentFlags(n)...), cw.ExtraArgs...), perNode...)
	}
	return append(append(append(args,
		"--state-dir", n.StateDir,
		"--socket-dir", cw.SocketDir(n),
		"--interface", cw.Iface(n),
		"--listen-port", fmt.Sprint(ListenPort),
		"--resync-interval", cw.Resync.String(),
		"--log-level", "debug",
		"--status-socket", cw.StatusSocket(n),
		"--metrics-port", fmt.Sprint(MetricsPort),
	), cw.ExtraArgs...), perNode...)
}

// StatusSocket is node n's agent status socket (`crosswire status
// --status-socket`). No .sock suffix: `wg show all` would take it for a
// WireGuard device.
func (cw *Cluster) StatusSocket(n *netcluster.Node) string {
	return filepath.Join(n.SocketDir, "crosswire-status")
}

// Iface is node n's tunnel device name.
func (cw *Cluster) Iface(n *netcluster.Node) string {
	if cw.IfaceName != nil {
		return cw.IfaceName(n)
	}
	if cw.HostSockets {
		return "cw-" + n.Name
	}
	return Iface
}

// SocketDir is where node n's agent serves its UAPI socket.
func (cw *Cluster) SocketDir(n *netcluster.Node) string {
	if cw.HostSockets {
		return HostSocketDir
	}
	return n.SocketDir
}

// StartAgent starts n's agent, logging to <Root>/<node>-agent.log.
func (cw *Cluster) StartAgent(n *netcluster.Node) (*netcluster.Process, error) {
	p, err := cw.Start(n.NS, filepath.Join(cw.Root, n.Name+"-agent.log"), cw.AgentArgs(n)...)
	if err != nil {
		return nil, err
	}
	cw.Agents[n.Name] = p
	return p, nil
}

// StopAgent signals n's agent and waits for it to exit.
func (cw *Cluster) StopAgent(n *netcluster.Node, sig syscall.Signal) error {
	p := cw.Agents[n.Name]
	if p == nil {
		return fmt.Errorf("no agent on %s", n.Name)
	}
	if err := p.Signal(sig); err != nil {
		return fmt.Errorf("signal agent on %s: %w", n.Name, err)
	}
	if err := p.Wait(10 * time.Second); err != nil && sig == syscall.SIGTERM {
		return fmt.Errorf("agent on %s after SIGTERM: %w", n.Name, err)
	}
	return nil
}

// WaitConverged waits until every agent has programmed every other node's
// pod CIDR and the first pod of every node reaches the first pod of every
// other node.
func (cw *Cluster) WaitConverged() error {
	return cw.WaitConvergedNodes(cw.running(nil)...)
}

// WaitConvergedNodes is WaitConverged for some nodes only.
func (cw *Cluster) WaitConvergedNodes(nodes ...*netcluster.Node) error {
	// Every family the pods have gets one set element per other node.
	sets := []struct {
		name, pattern string
		used          bool
	}{{"remote4", "10.244.", cw.PodStack.Has4()}, {"remote6", "fd00:10:244:", cw.PodStack.Has6()}}
	for _, n := range nodes {
		for _, set := range sets {
			want := 0
			if set.used {
				want = len(nodes) - 1
			}
			err := Eventually(convergeWait, func() error {
				out, err := netcluster.Exec(n.NS, "nft", "list", "set", "inet", NftTable, set.name)
				if err != nil {
					return err
				}
				if got := strings.Count(out, set.pattern); got != want {
					return fmt.Errorf("%s has %d CIDRs, want %d", set.name, got, want)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("datapath on %s: %w", n.Name, err)
			}
		}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			src, dst := a.Pods[0], b.Pods[0]
			for _, ip := range dst.IPs() {
				if err := Eventually(convergeWait, func() error { return netcluster.Ping(src.NS, ip, 1) }); err != nil {
					return fmt.Errorf("%s -> %s (%s): %w", src.Name, dst.Name, ip, err)
				}
			}
		}
	}
	return nil
}

// Eventually polls cond every 100 ms until it returns nil or timeout passes,
// returning the last error.
func Eventually(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
