package controller

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/crosswire/crosswire/test/apiserver"
)

// realCluster is a real kube-apiserver with the agent's ClusterRole bound
// to one agent identity, the way the chart grants it.
type realCluster struct {
	t     *testing.T
	admin kubernetes.Interface
	agent kubernetes.Interface
	// nodes is the agent's slim Node client (NewNodeClient), sharing
	// agent's HTTP client.
	nodes typedcorev1.NodeInterface
	// watches records the agent's Node watch requests.
	watches *watchLog
}

// watchLog records, for each Node watch request, whether it asked for the
// initial events (a watch-list stream) and whether its response came
// gzip-compressed.
type watchLog struct {
	mu      sync.Mutex
	entries []string // "list" or "plain", then "+gzip" when compressed
}

func (l *watchLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		q := req.URL.Query()
		if err != nil || req.URL.Path != "/api/v1/nodes" || q.Get("watch") != "true" {
			return resp, err
		}
		e := "plain"
		if q.Get("sendInitialEvents") == "true" {
			e = "list"
		}
		if resp.Uncompressed || resp.Header.Get("Content-Encoding") == "gzip" {
			e += "+gzip"
		}
		l.mu.Lock()
		l.entries = append(l.entries, e)
		l.mu.Unlock()
		return resp, err
	})
}

func (l *watchLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.entries, ",")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newRealCluster(t *testing.T) *realCluster {
	t.Helper()
	srv := apiserver.Start(t, apiserver.Options{})
	admin := srv.Client(t)
	ctx := context.Background()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "crosswire-agent"}}
	for _, r := range RBACRules() {
		role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: r.Verbs})
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "crosswire-agent"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "crosswire-agent:" + selfName}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(srv.AddUser(t, "crosswire-agent:"+selfName))
	cfg.UserAgent = "crosswire-agent"
	watches := &watchLog{}
	cfg.Wrap(watches.wrap)
	h, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := kubernetes.NewForConfigAndClient(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := NewNodeClient(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	return &realCluster{t: t, admin: admin, agent: agent, nodes: nodes, watches: watches}
}

func (c *realCluster) create(n *corev1.Node) {
	c.t.Helper()
	ctx := context.Background()
	status := n.Status
	created, err := c.admin.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("create %s: %v", n.Name, err)
	}
	created.Status = status
	if _, err := c.admin.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		c.t.Fatalf("status %s: %v", n.Name, err)
	}
}

func (c *realCluster) node(name string) *corev1.Node {
	c.t.Helper()
	n, err := c.admin.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

// warnings returns the Warning Events recorded on a Node.
func (c *realCluster) warnings(name string) []string {
	c.t.Helper()
	evs, err := c.admin.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + name,
	})
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		if e.Type == corev1.EventTypeWarning && e.Reason == ReasonNodeRejected {
			out = append(out, e.Message)
		}
	}
	return out
}

func waitState(t *testing.T, updates <-chan State, what string, ok func(State) bool) State {
	t.Helper()
	deadline := time.After(20 * time.Second)
	var last State
	for {
		select {
		case st := <-updates:
			last = st
			if ok(st) {
				return st
			}
		case <-deadline:
			t.Fatalf("%s: not reached; last state %+v", what, last)
		}
	}
}

func peerNames(st State) string {
	var names []string
	for _, p := range st.Peers {
		names = append(names, p.Name)
	}
	return strings.Join(names, ",")
}

// TestKubeSourceAgainstRealAPIServer runs the Kubernetes source with the
// agent's least-privilege RBAC against a real kube-apiserver and etcd.
func TestKubeSourceAgainstRealAPIServer(t *testing.T) {
	c := newRealCluster(t)
	key2, key3 := testKey(2), testKey(3)
	c.create(kubeNode(selfName, withPodCIDRs("10.244.1.0/24"), withIP("192.168.77.11")))
	c.create(kubeNode("node2", withPodCIDRs("10.244.2.0/24"), withIP("192.168.77.12"), withKey(key2)))
	c.create(kubeNode("node3", withPodCIDRs("10.244.3.0/24"), withIP("192.168.77.13")))

	selfKey := testKey(1)
	src := &KubeSource{Client: c.agent, Nodes: c.nodes, Self: selfName, SelfKey: pubKey(1), ListenPort: kubePort, Log: zap.NewNop(), reportEvery: true}
	updates := make(chan State, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, Materialize(func(st State) { updates <- st })) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	st := waitState(t, updates, "initial peers", func(st State) bool { return len(st.Peers) == 2 })
	if st.Local[0].String() != "10.244.1.0/24" || st.Peers[0].PublicKey != pubKey(2) || !st.Peers[1].PublicKey.IsZero() {
		t.Fatalf("initial state %+v", st)
	}

	// Published on its own Node, nowhere else.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := c.node(selfName).Annotations
		if a[AnnotationPublicKey] == selfKey && a[AnnotationEndpoint] == fmt.Sprintf("192.168.77.11:%d", kubePort) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("own Node annotations: %v", a)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// node3 publishes a key: it becomes a full peer.
	n3 := c.node("node3")
	n3.Annotations = map[string]string{AnnotationPublicKey: key3, AnnotationEndpoint: "192.168.77.13:51820"}
	if _, err := c.admin.CoreV1().Nodes().Update(ctx, n3, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitState(t, updates, "node3 key", func(st State) bool { return len(st.Peers) == 2 && st.Peers[1].PublicKey == pubKey(3) })

	// Each kind of bad input: rejected with an Event, good peers unchanged.
	bad := map[string]*corev1.Node{
		"bad-key":       kubeNode("bad-key", withPodCIDRs("10.244.10.0/24"), withIP("192.168.77.20"), withKey("not-a-key")),
		"bad-cidr":      kubeNode("bad-cidr", withCIDRAnn("10.244.11.0/33"), withIP("192.168.77.21"), withKey(testKey(11))),
		"overlap":       kubeNode("overlap", withPodCIDRs("10.244.2.0/25"), withIP("192.168.77.22"), withKey(testKey(12))),
		"dup-key":       kubeNode("dup-key", withPodCIDRs("10.244.13.0/24"), withIP("192.168.77.23"), withKey(key2)),
		"loop-endpoint": kubeNode("loop-endpoint", withPodCIDRs("10.244.14.0/24"), withIP("10.244.2.7"), withKey(testKey(14))),
		"bad-endpoint":  kubeNode("bad-endpoint", withPodCIDRs("10.244.15.0/24"), withIP("192.168.77.25"), withKey(testKey(15)), withEndpoint("nonsense")),
	}
	for _, n := range bad {
		c.create(n)
	}
	st = waitState(t, updates, "rejections", func(st State) bool { return len(st.Rejected) == len(bad) })
	if peerNames(st) != "node2,node3" || st.Peers[0].PublicKey != pubKey(2) || st.Peers[1].PublicKey != pubKey(3) {
		t.Fatalf("good peers disturbed: %+v", st.Peers)
	}
	for name := range bad {
		deadline := time.Now().Add(10 * time.Second)
		for len(c.warnings(name)) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no Warning Event on %s", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s: %s", name, c.warnings(name)[0])
	}

	// Delete removes the peer.
	if err := c.admin.CoreV1().Nodes().Delete(ctx, "node3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitState(t, updates, "node3 deleted", func(st State) bool { return peerNames(st) == "node2" })

	// The agent never wrote any Node but its own: the API server records
	// every writer of a Node in its managedFields.
	nodes, err := c.admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		for _, mf := range n.ManagedFields {
			if strings.HasPrefix(mf.Manager, "crosswire-agent") && n.Name != selfName {
				t.Errorf("agent wrote Node %s (%s %s)", n.Name, mf.Manager, mf.Operation)
			}
		}
	}
	if n := c.node(selfName); !hasManager(n, "crosswire-agent") {
		t.Errorf("own Node has no crosswire-agent managedFields entry: %v", n.ManagedFields)
	}

	// The cache synced from a watch-list stream (compressed: Go's client
	// accepts gzip) and every event since came on a plain watch, which the
	// API server never compresses event by event.
	if got := c.watches.String(); got != "list+gzip,plain" {
		t.Errorf("Node watches %q, want list+gzip,plain", got)
	}
}

func hasManager(n *corev1.Node, prefix string) bool {
	for _, mf := range n.ManagedFields {
		if strings.HasPrefix(mf.Manager, prefix) {
			return true
		}
	}
	return false
}
