package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

const agentGroup = "crosswire:agents"

// env is one size's world: a one-node namespace cluster, etcd and
// kube-apiserver on its underlay, and the agent's identity. close removes
// all of it, whatever state it is in.
type env struct {
	c     *netcluster.Cluster
	srv   *apiserver.Server
	admin kubernetes.Interface
	cw    *cwcluster.Cluster
	node  *netcluster.Node
	agent *netcluster.Process
}

func newEnv(ctx context.Context, cfg Config, mode string) (e *env, err error) {
	e = &env{}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.close())
			e = nil
		}
	}()
	if e.c, err = netcluster.Build(netcluster.Options{Nodes: 1, PodsPerNode: 1}); err != nil {
		return nil, fmt.Errorf("namespace cluster: %w", err)
	}
	e.node = e.c.Nodes[0]
	ip, err := e.c.AddControlPlane()
	if err != nil {
		return nil, err
	}
	e.srv, err = apiserver.Launch(apiserver.LaunchOptions{
		Options: apiserver.Options{BindAddress: ip, NetNS: e.c.Underlay, ToolsDir: cfg.ToolsDir},
		Dir:     filepath.Join(e.c.Root, "apiserver"),
	})
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver: %w", err)
	}
	// Creating thousands of Nodes quickly needs more than client-go's
	// default 5 QPS.
	rc := rest.CopyConfig(e.srv.Admin)
	rc.QPS, rc.Burst = 1000, 2000
	if e.admin, err = kubernetes.NewForConfig(rc); err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	if err := grantAgentRBAC(ctx, e.admin); err != nil {
		return nil, err
	}
	user, err := e.srv.NewUser("crosswire:"+e.node.Name, agentGroup)
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(e.c.Root, e.node.Name+".kubeconfig")
	if err := e.srv.WriteKubeconfig(user, kubeconfig); err != nil {
		return nil, fmt.Errorf("agent kubeconfig: %w", err)
	}
	e.cw = cwcluster.New(e.c, cfg.Bin, time.Hour)
	e.cw.Kube = &cwcluster.KubeSource{Admin: e.admin, Kubeconfigs: map[string]string{e.node.Name: kubeconfig}}
	// The test clusters' flags, but info logging: at debug, wireguard-go
	// logs several lines per peer, which at 5000 peers is the benchmark.
	e.cw.AgentFlags = func(n *netcluster.Node) []string {
		return []string{
			"--state-dir", n.StateDir,
			"--socket-dir", e.cw.SocketDir(n),
			"--interface", e.cw.Iface(n),
			"--listen-port", fmt.Sprint(cwcluster.ListenPort),
			"--resync-interval", time.Hour.String(),
			"--log-level", "info",
			"--status-socket", e.cw.StatusSocket(n),
			"--metrics-port", fmt.Sprint(cwcluster.MetricsPort),
			"--on-demand-peers=" + fmt.Sprint(mode == ModeOnDemand),
		}
	}
	key, err := e.cw.PublicKey(e.node)
	if err != nil {
		return nil, err
	}
	e.cw.Keys[e.node.Name] = key
	if err := e.cw.RegisterNode(ctx, e.node); err != nil {
		return nil, err
	}
	return e, nil
}

// startAgent starts the agent and returns when its process runs.
func (e *env) startAgent() error {
	p, err := e.cw.StartAgent(e.node)
	if err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	e.agent = p
	return nil
}

// agentLog is the path of the agent's log (JSON lines).
func (e *env) agentLog() string { return filepath.Join(e.c.Root, e.node.Name+"-agent.log") }

// close stops the API server, then the agent and the namespaces
// (Cluster.Close kills every process it started).
func (e *env) close() error {
	if e.srv != nil {
		e.srv.Stop()
	}
	if e.c != nil {
		return e.c.Close()
	}
	return nil
}

// tail returns the last lines of the agent's log, for errors.
func (e *env) tail(w io.Writer) {
	if e.agent != nil {
		fmt.Fprintf(w, "agent log (tail):\n%s\n", lastLines(e.agent.Log(), 20))
	}
}

// grantAgentRBAC installs the agent's least-privilege ClusterRole (as the
// Helm chart does), bound to the group the agent's certificate carries.
func grantAgentRBAC(ctx context.Context, admin kubernetes.Interface) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "crosswire-agent"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch", "patch"}},
			{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		},
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("agent ClusterRole: %w", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "crosswire-agent"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: agentGroup}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("agent ClusterRoleBinding: %w", err)
	}
	return nil
}
