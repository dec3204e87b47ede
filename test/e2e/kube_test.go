package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

const agentGroup = "crosswire:agents"

// newKubeEnv builds a namespace cluster with a real kube-apiserver on the
// underlay and starts agents that read Nodes from it, on the first `start`
// nodes only (the rest can join later), with extra agent flags.
func newKubeEnv(t testing.TB, o netcluster.Options, start int, extra ...string) *env {
	t.Helper()
	c := netcluster.New(t, o)
	ip, err := c.AddControlPlane()
	if err != nil {
		t.Fatal(err)
	}
	srv := apiserver.Start(t, apiserver.Options{BindAddress: ip, NetNS: c.Underlay})
	admin := srv.Client(t)
	grantAgentRBAC(t, srv)

	cw := cwcluster.New(c, agentBin, resync, extra...)
	cw.Kube = &cwcluster.KubeSource{Admin: admin, Kubeconfigs: map[string]string{}}
	for _, n := range c.Nodes {
		cfg := srv.AddUser(t, "crosswire:"+n.Name, agentGroup)
		path := filepath.Join(c.Root, n.Name+".kubeconfig")
		srv.Kubeconfig(t, cfg, path)
		cw.Kube.Kubeconfigs[n.Name] = path
	}
	e := &env{t: t, Cluster: cw, c: c, keys: cw.Keys, agents: cw.Agents, nodesFile: cw.NodesFile, api: srv}
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range cw.Agents {
				t.Logf("agent log of %s:\n%s", name, tail(p.Log(), 40))
			}
		}
	})
	if err := cw.StartNodes(c.Nodes[:start]...); err != nil {
		t.Fatal(err)
	}
	if err := cw.WaitConvergedNodes(c.Nodes[:start]...); err != nil {
		t.Fatal(err)
	}
	return e
}

// grantAgentRBAC grants the group every test agent's certificate carries
// exactly the agent's rules, as the chart does.
func grantAgentRBAC(t testing.TB, srv *apiserver.Server) {
	t.Helper()
	subject := rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: agentGroup}
	if err := cwcluster.GrantAgentRBAC(context.Background(), srv.Client(t), "crosswire-agent", subject); err != nil {
		t.Fatal(err)
	}
}

// published returns the crosswire annotations the API server holds for n.
func (e *env) published(n *netcluster.Node) (key, endpoint string, err error) {
	node, err := e.Kube.Admin.CoreV1().Nodes().Get(context.Background(), n.Name, metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	return node.Annotations[controller.AnnotationPublicKey], node.Annotations[controller.AnnotationEndpoint], nil
}

func TestKubeAgentsExchangeKeysThroughNodes(t *testing.T) {
	e := newKubeEnv(t, netcluster.Options{Nodes: 3, PodsPerNode: 2}, 3)
	for _, n := range e.c.Nodes {
		key, ep, err := e.published(n)
		if err != nil {
			t.Fatal(err)
		}
		if key != e.keys[n.Name] || ep != fmt.Sprintf("%s:%d", n.UnderlayIP, listenPort) {
			t.Errorf("%s published key %q endpoint %q; want %q %s:%d", n.Name, key, ep, e.keys[n.Name], n.UnderlayIP, listenPort)
		}
	}
	cap := e.c.StartCapture(t)
	crossNodeTraffic(t, e.c)
	stopEncrypted(t, cap, "all-pairs pod traffic")
}

func TestKubeNodeJoinLeaveAndRekey(t *testing.T) {
	e := newKubeEnv(t, netcluster.Options{Nodes: 4, PodsPerNode: 1}, 3)
	n1, n2, n4 := e.c.Nodes[0], e.c.Nodes[1], e.c.Nodes[3]
	ctx := context.Background()

	t.Run("join", func(t *testing.T) {
		if err := e.StartNodes(n4); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "node4 publishes its key", func() error {
			key, _, err := e.published(n4)
			if err != nil || key == "" {
				return errString(fmt.Sprintf("key %q, %v", key, err))
			}
			return nil
		})
		published := time.Now()
		// The promise: reachable, encrypted, within 2 s of publication.
		// No pod packet goes to node4 before node1 has applied it (peer,
		// set element, route): until then node4's pod CIDR is not
		// crosswire's, and a ping would cross the underlay in clear, as
		// designed, failing the capture below for the wrong reason.
		cidr := n4.PodCIDR.String()
		eventually(t, 2*time.Second, "node1 applies node4", func() error {
			if _, ok := e.wgPeers(t, n1)[e.keys[n4.Name]]; !ok {
				return errString("no wireguard peer for node4")
			}
			if err := contains(n1, cidr, "nft", "list", "set", "inet", "crosswire", "remote4"); err != nil {
				return err
			}
			return contains(n1, cidr, "ip", "route", "show", "table", "202")
		})
		applied := time.Since(published)
		cap := e.c.StartCapture(t)
		eventually(t, 2*time.Second, "node1 pod reaches node4 pod", func() error {
			return n1.Pods[0].Ping(n4.Pods[0].IP, 1)
		})
		reach := time.Since(published)
		t.Logf("node4 applied on node1 %v and reachable %v after its key was published",
			applied.Round(time.Millisecond), reach.Round(time.Millisecond))
		stopEncrypted(t, cap, "node4's join")
	})

	t.Run("delete", func(t *testing.T) {
		if err := e.DeleteNode(ctx, n4); err != nil {
			t.Fatal(err)
		}
		cidr := n4.PodCIDR.String()
		eventually(t, 5*time.Second, "node4 gone from node1", func() error {
			if contains(n1, cidr, "nft", "list", "set", "inet", "crosswire", "remote4") == nil {
				return errString("set element still present")
			}
			if contains(n1, cidr, "ip", "route", "show", "table", "202") == nil {
				return errString("route still present")
			}
			if _, ok := e.wgPeers(t, n1)[e.keys[n4.Name]]; ok {
				return errString("wireguard peer still present")
			}
			return nil
		})
	})

	t.Run("rekey", func(t *testing.T) {
		e.stopAgent(n2, syscall.SIGTERM)
		if err := os.Remove(filepath.Join(n2.StateDir, "private.key")); err != nil {
			t.Fatal(err)
		}
		old := e.keys[n2.Name]
		e.startAgent(n2)
		newKey := e.pubkey(n2)
		if newKey == old {
			t.Fatal("key not replaced")
		}
		e.keys[n2.Name] = newKey
		eventually(t, 10*time.Second, "new key published", func() error {
			key, _, err := e.published(n2)
			if err != nil || key != newKey {
				return errString(fmt.Sprintf("published %q, %v", key, err))
			}
			return nil
		})
		for _, n := range []*netcluster.Node{n1, e.c.Nodes[2]} {
			eventually(t, 5*time.Second, n.Name+" learns the new key", func() error {
				peers := e.wgPeers(t, n)
				if _, ok := peers[old]; ok {
					return errString("old key still a peer")
				}
				if _, ok := peers[newKey]; !ok {
					return errString("new key not a peer")
				}
				return nil
			})
		}
		assertEncrypted(t, e.c)
	})

	for name, p := range e.agents {
		if p == nil {
			continue
		}
		if bad := unexpectedAgentErrors(p.Log()); len(bad) > 0 {
			t.Errorf("%s agent logged unexpected errors:\n%s", name, strings.Join(bad, "\n"))
		}
	}
}
