package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/test/netcluster"
)

const (
	iface      = "crosswire0"
	listenPort = 51820
	resync     = time.Second
)

// env is a namespace cluster with one crosswire agent per node, fed from a
// NodeList file, as a cluster without an API server would run it.
type env struct {
	t         *testing.T
	c         *netcluster.Cluster
	nodesFile string
	keys      map[string]string // node name -> public key
	agents    map[string]*netcluster.Process
}

func newEnv(t *testing.T, o netcluster.Options) *env {
	t.Helper()
	c := netcluster.New(t, o)
	e := &env{t: t, c: c, nodesFile: filepath.Join(c.Root, "nodes.yaml"),
		keys: map[string]string{}, agents: map[string]*netcluster.Process{}}
	for _, n := range c.Nodes {
		e.keys[n.Name] = e.pubkey(n)
	}
	e.writeNodes(c.Nodes)
	for _, n := range c.Nodes {
		e.startAgent(n)
	}
	e.waitConverged()
	return e
}

func (e *env) pubkey(n *netcluster.Node) string {
	e.t.Helper()
	out, err := netcluster.Exec(n.NS, agentBin, "pubkey", "--state-dir", n.StateDir)
	if err != nil {
		e.t.Fatalf("crosswire pubkey on %s: %v", n.Name, err)
	}
	return strings.TrimSpace(out)
}

// writeNodes writes the NodeList the agents read: the same objects the API
// server would serve, with crosswire's annotations.
func (e *env) writeNodes(nodes []*netcluster.Node) {
	e.t.Helper()
	list := corev1.NodeList{TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"}}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range nodes {
		node := corev1.Node{
			TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{
				Name:              n.Name,
				CreationTimestamp: metav1.NewTime(base.Add(time.Duration(n.Index) * time.Minute)),
				Annotations:       map[string]string{},
			},
			Spec: corev1.NodeSpec{PodCIDR: n.PodCIDR.String(), PodCIDRs: []string{n.PodCIDR.String()}},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.UnderlayIP.String()},
				{Type: corev1.NodeHostName, Address: n.Name},
			}},
		}
		if k := e.keys[n.Name]; k != "" {
			node.Annotations[controller.AnnotationPublicKey] = k
			node.Annotations[controller.AnnotationEndpoint] = netip.AddrPortFrom(n.UnderlayIP, listenPort).String()
		}
		list.Items = append(list.Items, node)
	}
	data, err := yaml.Marshal(list)
	if err != nil {
		e.t.Fatal(err)
	}
	tmp := e.nodesFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.nodesFile); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) agentArgs(n *netcluster.Node) []string {
	return []string{
		agentBin, "agent",
		"--node-name", n.Name,
		"--nodes-file", e.nodesFile,
		"--state-dir", n.StateDir,
		"--socket-dir", n.SocketDir,
		"--interface", iface,
		"--listen-port", fmt.Sprint(listenPort),
		"--resync-interval", resync.String(),
		"--log-level", "debug",
	}
}

func (e *env) startAgent(n *netcluster.Node) *netcluster.Process {
	e.t.Helper()
	p, err := e.c.Start(n.NS, filepath.Join(e.c.Root, n.Name+"-agent.log"), e.agentArgs(n)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.agents[n.Name] = p
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("agent log of %s:\n%s", n.Name, tail(p.Log(), 40))
		}
	})
	return p
}

// stopAgent stops a node's agent with sig and waits for it to exit.
func (e *env) stopAgent(n *netcluster.Node, sig syscall.Signal) {
	e.t.Helper()
	p := e.agents[n.Name]
	if err := p.Signal(sig); err != nil {
		e.t.Fatalf("signal agent on %s: %v", n.Name, err)
	}
	if err := p.Wait(10 * time.Second); err != nil && sig == syscall.SIGTERM {
		e.t.Fatalf("agent on %s after SIGTERM: %v\n%s", n.Name, err, tail(p.Log(), 30))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitConverged waits until every agent has programmed every remote pod
// CIDR and every pod reaches one pod on each other node.
func (e *env) waitConverged() {
	e.t.Helper()
	for _, n := range e.c.Nodes {
		want := len(e.c.Nodes) - 1
		eventually(e.t, 20*time.Second, "datapath on "+n.Name, func() error {
			out, err := netcluster.Exec(n.NS, "nft", "list", "set", "inet", "crosswire", "remote4")
			if err != nil {
				return err
			}
			if got := strings.Count(out, "10.244."); got != want {
				return fmt.Errorf("remote4 has %d CIDRs, want %d:\n%s", got, want, out)
			}
			return nil
		})
	}
	for _, a := range e.c.Nodes {
		for _, b := range e.c.Nodes {
			if a == b {
				continue
			}
			src, dst := a.Pods[0], b.Pods[0]
			eventually(e.t, 20*time.Second, fmt.Sprintf("%s -> %s", src.Name, dst.Name), func() error {
				return netcluster.Ping(src.NS, dst.IP, 1)
			})
		}
	}
}
