package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

// The agents' identity, as `helm install crosswire charts/crosswire -n
// crosswire` creates it: a ServiceAccount bound to a ClusterRole with
// exactly controller.RBACRules.
const (
	agentNamespace = "crosswire"
	agentAccount   = "crosswire"
	tokenLifetime  = 7 * 24 * 3600 // seconds; the demo may stay up for days
)

func (st *state) apiDir() string          { return filepath.Join(st.Dir, "apiserver") }
func (st *state) adminKubeconfig() string { return filepath.Join(st.Dir, "admin.kubeconfig") }
func (st *state) kubectlWrapper() string  { return filepath.Join(st.Dir, "kubectl") }
func (st *state) nodeDir(n *netcluster.Node) string {
	return filepath.Join(st.Dir, n.Name)
}
func (st *state) statusSocket(n *netcluster.Node) string {
	return filepath.Join(st.nodeDir(n), "status.sock")
}
func (st *state) iface(n *netcluster.Node) string { return st.Prefix + "-n" + strconv.Itoa(n.Index) }

// chartFlags are the flags charts/crosswire passes to `crosswire agent`
// with its default values (templates/_helpers.tpl, crosswire.agentArgs;
// demo_test checks them against values.yaml). Three differ because every
// node shares this machine's filesystem: the key directory, the tunnel
// device name (its UAPI socket shares /var/run/wireguard, where the host's
// `wg` finds every node) and the status socket. The chart sets the node
// name through $NODE_NAME and uses the in-cluster ServiceAccount; here
// --node-name and --kubeconfig (with that ServiceAccount's token) come
// first.
func (st *state) chartFlags(n *netcluster.Node) []string {
	return cwcluster.ChartFlags(map[string]string{
		"state-dir":     n.StateDir,
		"socket-dir":    cwcluster.HostSocketDir,
		"interface":     st.iface(n),
		"status-socket": st.statusSocket(n),
	})
}

// agents prepares crosswire agents on c the way the demo runs them: Nodes
// from the API server, the chart's flags, sockets where the host's tools
// look.
func (st *state) agents(c *netcluster.Cluster, admin kubernetes.Interface) *cwcluster.Cluster {
	cw := cwcluster.New(c, st.Bin, 0)
	cw.HostSockets = true
	cw.IfaceName = st.iface
	cw.AgentFlags = st.chartFlags
	cw.Kube = &cwcluster.KubeSource{Admin: admin, Kubeconfigs: map[string]string{}}
	for _, n := range c.Nodes {
		cw.Kube.Kubeconfigs[n.Name] = filepath.Join(st.nodeDir(n), "kubeconfig")
	}
	return cw
}

// startAPIServer launches etcd and kube-apiserver detached, on the
// underlay bridge where every node reaches them, and writes the admin
// kubeconfig plus a kubectl wrapper that runs where the server is
// reachable.
func (st *state) startAPIServer(c *netcluster.Cluster) (*apiserver.Server, error) {
	ip, err := c.AddControlPlane()
	if err != nil {
		return nil, err
	}
	srv, err := apiserver.Launch(apiserver.LaunchOptions{
		Options: apiserver.Options{BindAddress: ip, NetNS: c.Underlay},
		Dir:     st.apiDir(), Detached: true,
	})
	if err != nil {
		return nil, err
	}
	if err := srv.WriteKubeconfig(srv.Admin, st.adminKubeconfig()); err != nil {
		return nil, err
	}
	wrapper := fmt.Sprintf("#!/bin/sh\n# kubectl against the crosswire demo's API server, run in the underlay\n# namespace where it listens (%s).\nexec ip netns exec %s %s --kubeconfig %s \"$@\"\n",
		srv.URL, c.Underlay, kubectlPath(), st.adminKubeconfig())
	if err := os.WriteFile(st.kubectlWrapper(), []byte(wrapper), 0o755); err != nil {
		return nil, err
	}
	return srv, nil
}

func kubectlPath() string { return filepath.Join(apiserver.DefaultToolsDir(), "kubectl") }

// installRBAC creates what the chart's rbac.yaml and serviceaccount.yaml
// create.
func installRBAC(ctx context.Context, admin kubernetes.Interface) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: agentNamespace}}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: agentAccount, Namespace: agentNamespace}}
	if _, err := admin.CoreV1().ServiceAccounts(agentNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return err
	}
	return cwcluster.GrantAgentRBAC(ctx, admin, "crosswire",
		rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: agentAccount, Namespace: agentNamespace})
}

// writeAgentKubeconfigs gives each node's agent a kubeconfig holding a
// token of the chart's ServiceAccount: the identity, and so the RBAC, of a
// pod of the chart's DaemonSet.
func (st *state) writeAgentKubeconfigs(ctx context.Context, srv *apiserver.Server, admin kubernetes.Interface, cw *cwcluster.Cluster, nodes []*netcluster.Node) error {
	exp := int64(tokenLifetime)
	for _, n := range nodes {
		tr, err := admin.CoreV1().ServiceAccounts(agentNamespace).CreateToken(ctx, agentAccount,
			&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("token for %s: %w", n.Name, err)
		}
		cfg := &rest.Config{Host: srv.URL, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: srv.CAData}}
		if err := srv.WriteKubeconfig(cfg, cw.Kube.Kubeconfigs[n.Name]); err != nil {
			return err
		}
	}
	return nil
}

// markReady gives Nodes the Ready condition a kubelet would report, so
// `kubectl get nodes` reads like a working cluster; there is no kubelet and
// no node controller to change it later.
func markReady(ctx context.Context, admin kubernetes.Interface, nodes []*netcluster.Node) error {
	for _, n := range nodes {
		node, err := admin.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: now, LastTransitionTime: now,
			Reason: "NetnsNode", Message: "network-namespace node of the crosswire demo (no kubelet)",
		})
		if _, err := admin.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("node %s status: %w", n.Name, err)
		}
	}
	return nil
}
