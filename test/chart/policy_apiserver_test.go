package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/wgtun"
)

// nodeNameExtra is where a pod-bound ServiceAccount token carries the
// name of the pod's Node, and what the chart's policy reads.
const nodeNameExtra = "authentication.kubernetes.io/node-name"

// policyCluster is a real API server with the chart applied for real
// (default values: admission policy on), two Nodes and, on each, a pod
// running as the agent's ServiceAccount.
type policyCluster struct {
	t      *testing.T
	srv    *apiserver.Server
	admin  kubernetes.Interface
	m      *manifests
	policy string // the policy's name, which its denials carry
}

func newPolicyCluster(t *testing.T) *policyCluster {
	t.Helper()
	helmPath(t) // fail early with the build command
	srv := apiserver.Start(t, apiserver.Options{})
	c := &policyCluster{t: t, srv: srv, admin: srv.Client(t), m: render(t)}
	c.policy = c.m.Policy.Name
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}}
	if _, err := c.admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "admin.kubeconfig")
	srv.Kubeconfig(t, srv.Admin, kubeconfig)
	cmd := exec.CommandContext(ctx, filepath.Join(apiserver.DefaultToolsDir(), "kubectl"), "--kubeconfig", kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(c.m.raw)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out.String())
	}
	t.Logf("kubectl apply:\n%s", out.String())
	return c
}

// node creates a Node with an InternalIP and a pod on it that runs as the
// agent's ServiceAccount (spec.nodeName set, as the DaemonSet controller
// does; no kubelet is needed to bind a token to it).
func (c *policyCluster) node(name, ip string) *corev1.Pod {
	c.t.Helper()
	ctx := c.t.Context()
	n, err := c.admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	if _, err := c.admin.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-" + name, Namespace: testNamespace},
		Spec: corev1.PodSpec{
			NodeName:           name,
			ServiceAccountName: c.m.ServiceAccount.Name,
			Containers:         []corev1.Container{{Name: "agent", Image: c.m.DaemonSet.Spec.Template.Spec.Containers[0].Image}},
		},
	}
	pod, err = c.admin.CoreV1().Pods(testNamespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return pod
}

// client authenticates with a token for the agent's ServiceAccount, bound
// to pod when it is not nil (as the kubelet's projected token is), else
// bound to nothing. It checks what the API server makes of the token.
func (c *policyCluster) client(pod *corev1.Pod) kubernetes.Interface {
	c.t.Helper()
	ctx := c.t.Context()
	req := &authv1.TokenRequest{}
	if pod != nil {
		req.Spec.BoundObjectRef = &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tok, err := c.admin.CoreV1().ServiceAccounts(testNamespace).CreateToken(ctx, c.m.ServiceAccount.Name, req, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := &rest.Config{Host: c.srv.URL, BearerToken: tok.Status.Token, QPS: 500, Burst: 1000,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.srv.CAData}, UserAgent: controller.EventComponent}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	who, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	u := who.Status.UserInfo
	wantUser := "system:serviceaccount:" + testNamespace + ":" + c.m.ServiceAccount.Name
	node := u.Extra[nodeNameExtra]
	if u.Username != wantUser || (pod == nil) != (len(node) == 0) || (pod != nil && (len(node) != 1 || node[0] != pod.Spec.NodeName)) {
		c.t.Fatalf("token authenticates as %s with %s=%v; want %s bound to pod %v", u.Username, nodeNameExtra, node, wantUser, pod)
	}
	return cs
}

// annotate merge-patches annotations (a nil value removes one).
func annotate(ctx context.Context, cs kubernetes.Interface, node string, ann map[string]any, dryRun bool) error {
	return patch(ctx, cs, node, map[string]any{"metadata": map[string]any{"annotations": ann}}, dryRun)
}

func patch(ctx context.Context, cs kubernetes.Interface, node string, body map[string]any, dryRun bool, sub ...string) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: controller.EventComponent}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = cs.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, b, opts, sub...)
	return err
}

// deniedByPolicy fails unless err is the chart policy's denial carrying
// want in its message.
func (c *policyCluster) deniedByPolicy(t *testing.T, what string, err error, want string) {
	t.Helper()
	prefix := fmt.Sprintf("ValidatingAdmissionPolicy '%s' with binding '%s' denied request", c.policy, c.m.PolicyBinding.Name)
	switch {
	case err == nil:
		t.Errorf("%s: allowed, want denied by %s", what, c.policy)
	case !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), prefix) || !strings.Contains(err.Error(), want):
		t.Errorf("%s: %v; want Forbidden from %q saying %q", what, err, prefix, want)
	default:
		t.Logf("%s: %v", what, err)
	}
}

func (c *policyCluster) annotations(name string) map[string]string {
	c.t.Helper()
	n, err := c.admin.CoreV1().Nodes().Get(c.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return n.Annotations
}

// TestNodeIdentityPolicy applies the rendered chart to a real
// kube-apiserver and shows that its ValidatingAdmissionPolicy lets an
// agent, authenticated by a token bound to its pod, change only its own
// Node's key and endpoint annotations; that every other change by the
// agent's ServiceAccount is denied by the policy, even where RBAC would
// allow it; and that operators keep full control.
func TestNodeIdentityPolicy(t *testing.T) {
	c := newPolicyCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	podA, podB := c.node("node-a", "192.168.77.11"), c.node("node-b", "192.168.77.12")
	agentA, agentB, unbound := c.client(podA), c.client(podB), c.client(nil)
	keyA, keyB := wgtun.Key(bytes.Repeat([]byte{1}, 32)).String(), wgtun.Key(bytes.Repeat([]byte{2}, 32)).String()

	// The API server type-checks a new policy and starts enforcing it a
	// moment after it is created: wait until a known-bad request (dry run,
	// so nothing changes while the policy is not in force yet) is denied.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := annotate(ctx, agentA, "node-b", map[string]any{controller.AnnotationPublicKey: keyA}, true)
		if err != nil && strings.Contains(err.Error(), c.policy) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy not in force after 30 s: A writing B's key gives %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An operator's settings on A, which the agent must not touch.
	if err := annotate(ctx, c.admin, "node-a", map[string]any{
		controller.AnnotationEndpointOverride: "203.0.113.7:51820", "example.com/owner": "net"}, false); err != nil {
		t.Fatalf("admin sets an override: %v", err)
	}

	t.Run("own key and endpoint", func(t *testing.T) {
		for who, tc := range map[string]struct {
			cs        kubernetes.Interface
			node, key string
			endpoint  string
		}{
			"A": {agentA, "node-a", keyA, "192.168.77.11:51820"},
			"B": {agentB, "node-b", keyB, "192.168.77.12:51820"},
		} {
			if err := annotate(ctx, tc.cs, tc.node, map[string]any{
				controller.AnnotationPublicKey: tc.key, controller.AnnotationEndpoint: tc.endpoint}, false); err != nil {
				t.Fatalf("%s sets its own key and endpoint: %v", who, err)
			}
			a := c.annotations(tc.node)
			if a[controller.AnnotationPublicKey] != tc.key || a[controller.AnnotationEndpoint] != tc.endpoint {
				t.Errorf("%s's Node annotations %v", who, a)
			}
		}
		// Removing its stale endpoint is a change of its own annotation.
		if err := annotate(ctx, agentA, "node-a", map[string]any{controller.AnnotationEndpoint: nil}, false); err != nil {
			t.Fatalf("A removes its endpoint: %v", err)
		}
		if a := c.annotations("node-a"); a[controller.AnnotationEndpoint] != "" || a[controller.AnnotationEndpointOverride] == "" {
			t.Errorf("after A removed its endpoint: %v", a)
		}
	})

	t.Run("denied", func(t *testing.T) {
		before := map[string]map[string]string{"node-a": c.annotations("node-a"), "node-b": c.annotations("node-b")}
		for _, tc := range []struct {
			what string
			cs   kubernetes.Interface
			node string
			body map[string]any
			sub  string
			want string
		}{
			{"A writes B's key", agentA, "node-b", ann(controller.AnnotationPublicKey, keyA), "", "on Node node-a may not change Node node-b"},
			{"A writes B's endpoint", agentA, "node-b", ann(controller.AnnotationEndpoint, "192.168.77.11:51820"), "", "may not change Node node-b"},
			{"A removes B's key", agentA, "node-b", ann(controller.AnnotationPublicKey, nil), "", "may not change Node node-b"},
			{"A writes its endpoint override", agentA, "node-a", ann(controller.AnnotationEndpointOverride, "198.51.100.1:51820"), "", "may change only the annotations"},
			{"A removes its endpoint override", agentA, "node-a", ann(controller.AnnotationEndpointOverride, nil), "", "may change only the annotations"},
			{"A writes its pod-cidrs override", agentA, "node-a", ann(controller.AnnotationPodCIDRs, "10.244.2.0/24"), "", "may change only the annotations"},
			{"A writes another annotation", agentA, "node-a", ann("example.com/owner", "mallory"), "", "may change only the annotations"},
			{"A writes its labels", agentA, "node-a", map[string]any{"metadata": map[string]any{"labels": map[string]any{"node-role.kubernetes.io/control-plane": ""}}}, "", "labels"},
			{"A writes its finalizers", agentA, "node-a", map[string]any{"metadata": map[string]any{"finalizers": []string{"example.com/keep"}}}, "", "finalizers"},
			{"A writes its spec", agentA, "node-a", map[string]any{"spec": map[string]any{"unschedulable": true}}, "", "spec"},
			{"A writes its spec and key at once", agentA, "node-a", map[string]any{"spec": map[string]any{"podCIDRs": []string{"10.244.2.0/24"}}, "metadata": map[string]any{"annotations": map[string]any{controller.AnnotationPublicKey: keyB}}}, "", "spec"},
			{"a token bound to no pod writes A's key", unbound, "node-a", ann(controller.AnnotationPublicKey, keyB), "", "no " + nodeNameExtra},
			{"B writes A's key", agentB, "node-a", ann(controller.AnnotationPublicKey, keyB), "", "on Node node-b may not change Node node-a"},
		} {
			err := patch(ctx, tc.cs, tc.node, tc.body, false)
			c.deniedByPolicy(t, tc.what, err, tc.want)
		}
		for name, want := range before {
			if got := c.annotations(name); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Node %s annotations changed by denied requests: %v, was %v", name, got, want)
			}
		}
		// Status is a subresource RBAC does not grant: the API server
		// refuses before admission...
		err := patch(ctx, agentA, "node-a", map[string]any{"status": map[string]any{"addresses": []map[string]string{{"type": "InternalIP", "address": "10.9.9.9"}}}}, false, "status")
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `cannot patch resource "nodes/status"`) {
			t.Errorf("A patches nodes/status: %v, want RBAC's Forbidden", err)
		}
		// ...and status sent to the main resource is dropped by the API
		// server (the Node strategy keeps the old status) before the
		// policy sees the object.
		if err := patch(ctx, agentA, "node-a", map[string]any{"status": map[string]any{"addresses": []map[string]string{{"type": "InternalIP", "address": "10.9.9.9"}}}}, false); err != nil {
			t.Errorf("status through the main resource: %v", err)
		}
		n, err := c.admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(n.Status.Addresses) != 1 || n.Status.Addresses[0].Address != "192.168.77.11" {
			t.Errorf("A changed its status to %+v", n.Status.Addresses)
		}
	})

	// A wider role than the chart's, bound to the same ServiceAccount: the
	// policy alone still holds.
	t.Run("wider RBAC", func(t *testing.T) {
		wide := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "too-wide"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"nodes", "nodes/status"}, Verbs: []string{"get", "create", "update", "patch", "delete"}}}}
		if _, err := c.admin.RbacV1().ClusterRoles().Create(ctx, wide, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "too-wide"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "too-wide"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: c.m.ServiceAccount.Name, Namespace: testNamespace}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// RBAC reads roles through an informer: wait until the wider
		// role is in force (get was not granted before).
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if _, err := agentA.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{}); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("wider role not in force: %v", err)
			}
		}
		status := map[string]any{"status": map[string]any{"addresses": []map[string]string{{"type": "InternalIP", "address": "10.9.9.9"}}}}
		c.deniedByPolicy(t, "A patches its nodes/status", patch(ctx, agentA, "node-a", status, false, "status"), "may not change nodes/status")
		_, err := agentA.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-c"}}, metav1.CreateOptions{})
		c.deniedByPolicy(t, "A creates a Node", err, "may not create Nodes")
		c.deniedByPolicy(t, "A deletes B", agentA.CoreV1().Nodes().Delete(ctx, "node-b", metav1.DeleteOptions{}), "may not delete Nodes")
		c.deniedByPolicy(t, "A deletes its own Node", agentA.CoreV1().Nodes().Delete(ctx, "node-a", metav1.DeleteOptions{}), "may not delete Nodes")

		// A full update (PUT) of its own Node that changes only its key:
		// resourceVersion and managedFields differ on every write and are
		// not what the policy compares.
		n, err := agentA.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Annotations[controller.AnnotationPublicKey] = keyB
		if _, err := agentA.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{FieldManager: controller.EventComponent}); err != nil {
			t.Errorf("A updates its own key with PUT: %v", err)
		}
		n, err = agentA.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels["example.com/x"] = "y"
		_, err = agentA.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		c.deniedByPolicy(t, "A updates its labels with PUT", err, "labels")

		if err := c.admin.RbacV1().ClusterRoleBindings().Delete(ctx, "too-wide", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("operator", func(t *testing.T) {
		for what, body := range map[string]map[string]any{
			"override":  ann(controller.AnnotationEndpointOverride, "198.51.100.1:51820"),
			"pod-cidrs": ann(controller.AnnotationPodCIDRs, "10.244.7.0/24"),
			"B's key":   ann(controller.AnnotationPublicKey, nil),
			"labels":    {"metadata": map[string]any{"labels": map[string]any{"example.com/x": "z"}}},
			"spec":      {"spec": map[string]any{"unschedulable": true}},
		} {
			node := "node-a"
			if what == "B's key" {
				node = "node-b"
			}
			if err := patch(ctx, c.admin, node, body, false); err != nil {
				t.Errorf("admin sets %s: %v", what, err)
			}
		}
		if err := c.admin.CoreV1().Nodes().Delete(ctx, "node-b", metav1.DeleteOptions{}); err != nil {
			t.Errorf("admin deletes a Node: %v", err)
		}
	})
}

func ann(k string, v any) map[string]any {
	return map[string]any{"metadata": map[string]any{"annotations": map[string]any{k: v}}}
}

// TestAgentPublishesUnderPolicy runs the agent's Kubernetes side
// (controller.KubeSource) with a token bound to its pod against the API
// server enforcing the chart's policy and RBAC: it syncs, and publishes its
// key, endpoint and post-quantum exchange port on its own Node. The same source with a token bound to
// another node's pod cannot publish for this one.
func TestAgentPublishesUnderPolicy(t *testing.T) {
	c := newPolicyCluster(t)
	podA, podB := c.node("node-a", "192.168.77.11"), c.node("node-b", "192.168.77.12")
	agentA, agentB := c.client(podA), c.client(podB)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := annotate(t.Context(), agentA, "node-b", map[string]any{controller.AnnotationPublicKey: "probe"}, true)
		if err != nil && strings.Contains(err.Error(), c.policy) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy not in force after 30 s: %v", err)
		}
	}

	priv, err := wgtun.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	run := func(cs kubernetes.Interface, self string, key wgtun.Key, log *zap.Logger) (stop func()) {
		// With post-quantum on, as the chart's postQuantum.mode=on runs it:
		// the exchange's port is published too.
		src := &controller.KubeSource{Client: cs, Self: self, SelfKey: key, ListenPort: 51820, PQPort: 51821,
			RetryBase: 100 * time.Millisecond, RetryMax: time.Second, Log: log}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- src.Run(ctx, controller.Materialize(func(controller.State) {})) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}

	// B's token claiming to be node-a: its publication is denied, and
	// retried (and denied) until it stops.
	core, logs := observer.New(zap.WarnLevel)
	stop := run(agentB, "node-a", wgtun.Key(bytes.Repeat([]byte{9}, 32)), zap.New(core))
	denied := func() int {
		n := 0
		for _, e := range logs.FilterMessage("publishing key and endpoint failed; will retry").All() {
			if strings.Contains(fmt.Sprint(e.ContextMap()["error"]), "may not change Node node-a") {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); denied() < 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("B's agent posing as node-a: no two denied publications; logs %+v", logs.All())
		}
	}
	stop()
	if a := c.annotations("node-a"); a[controller.AnnotationPublicKey] != "" {
		t.Errorf("B's agent published for node-a: %v", a)
	}
	t.Logf("B's agent posing as node-a: %d publications denied", denied())

	defer run(agentA, "node-a", priv.PublicKey(), zap.NewNop())()
	want := map[string]string{controller.AnnotationPublicKey: priv.PublicKey().String(), controller.AnnotationEndpoint: "192.168.77.11:51820",
		controller.AnnotationPQPort: "51821"}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		a := c.annotations("node-a")
		if a[controller.AnnotationPublicKey] == want[controller.AnnotationPublicKey] && a[controller.AnnotationEndpoint] == want[controller.AnnotationEndpoint] &&
			a[controller.AnnotationPQPort] == want[controller.AnnotationPQPort] {
			t.Logf("node-a published under the policy: %v", a)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-a annotations %v, want %v", a, want)
		}
	}
	// Its KeyPublished Event got through too (RBAC events create).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		evs, err := c.admin.CoreV1().Events("default").List(t.Context(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=node-a,reason=" + controller.ReasonKeyPublished})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs.Items) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no KeyPublished Event for node-a")
		}
	}
}
