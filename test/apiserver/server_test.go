package apiserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

func TestMissingBinariesNamesBuildScript(t *testing.T) {
	_, _, err := binaries(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "build.sh") {
		t.Fatalf("binaries(empty dir) = %v, want an error naming build.sh", err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newNode(name, podCIDR string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}},
	}
}

func clientFor(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func annotate(ctx context.Context, c kubernetes.Interface, node, key, value string) error {
	patch := `{"metadata":{"annotations":{"` + key + `":"` + value + `"}}}`
	_, err := c.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// eventually retries fn until it succeeds or timeout passes: RBAC changes and
// reconnects take effect asynchronously.
func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestServer(t *testing.T) {
	start := time.Now()
	s := Start(t, Options{})
	t.Logf("ready in %v at %s", time.Since(start).Round(time.Millisecond), s.URL)
	ctx := ctxT(t)
	admin := s.Client(t)

	for _, n := range []*corev1.Node{newNode("node1", "10.244.1.0/24"), newNode("node2", "10.244.2.0/24")} {
		if _, err := admin.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s: %v", n.Name, err)
		}
	}
	nodes, err := admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list nodes: %v", err)
	}
	if len(nodes.Items) != 2 {
		t.Fatalf("listed %d nodes, want 2", len(nodes.Items))
	}

	t.Run("RBACDeniesUntilBound", func(t *testing.T) {
		agent := clientFor(t, s.AddUser(t, "crosswire-agent", "crosswire"))
		err := annotate(ctx, agent, "node1", "crosswire.io/test", "a")
		if !apierrors.IsForbidden(err) {
			t.Fatalf("patch without a role: err = %v, want Forbidden", err)
		}
		bindNodeRole(t, ctx, admin, "crosswire-agent")
		eventually(t, 10*time.Second, "patch after binding", func() error {
			return annotate(ctx, agent, "node1", "crosswire.io/test", "a")
		})
		if _, err := agent.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatalf("list after binding: %v", err)
		}
		if _, err := agent.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("list pods with a nodes-only role: err = %v, want Forbidden", err)
		}
	})

	t.Run("NodeIdentityLimitedToOwnNode", func(t *testing.T) {
		kubelet := clientFor(t, s.AddUser(t, "system:node:node1", "system:nodes"))
		if err := annotate(ctx, kubelet, "node1", "crosswire.io/own", "yes"); err != nil {
			t.Fatalf("node1 patching its own Node: %v", err)
		}
		if err := annotate(ctx, kubelet, "node2", "crosswire.io/own", "no"); !apierrors.IsForbidden(err) {
			t.Fatalf("node1 patching node2: err = %v, want Forbidden (NodeRestriction)", err)
		}
	})

	t.Run("RestartKeepsDataAndClientsReconnect", func(t *testing.T) {
		agent := clientFor(t, s.AddUser(t, "crosswire-agent", "crosswire"))
		bindNodeRole(t, ctx, admin, "crosswire-agent")
		// An informer is what the controller uses; it must resume watching
		// by itself after the outage.
		factory := informers.NewSharedInformerFactory(agent, 0)
		inf := factory.Core().V1().Nodes().Informer()
		stop := make(chan struct{})
		defer close(stop)
		factory.Start(stop)
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			t.Fatal("node informer did not sync")
		}

		stopAt := time.Now()
		s.StopAPIServer(t)
		t.Logf("stopped in %v", time.Since(stopAt).Round(time.Millisecond))
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := admin.CoreV1().Nodes().Get(short, "node1", metav1.GetOptions{})
		cancel()
		if err == nil {
			t.Fatal("get while stopped succeeded")
		}
		startAt := time.Now()
		s.StartAPIServer(t)
		t.Logf("started again in %v", time.Since(startAt).Round(time.Millisecond))

		n, err := admin.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get node1 after restart: %v", err)
		}
		if n.Annotations["crosswire.io/test"] != "a" {
			t.Fatalf("node1 annotations after restart = %v, want crosswire.io/test=a", n.Annotations)
		}
		if err := annotate(ctx, admin, "node2", "crosswire.io/after-restart", "1"); err != nil {
			t.Fatalf("patch after restart: %v", err)
		}
		eventually(t, 30*time.Second, "informer sees the post-restart change", func() error {
			obj, ok, err := inf.GetStore().GetByKey("node2")
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("node2 not in the informer cache")
			}
			if got := obj.(*corev1.Node).Annotations["crosswire.io/after-restart"]; got != "1" {
				return fmt.Errorf("cached node2 annotation = %q, want 1", got)
			}
			return nil
		})
	})

	t.Run("PauseMakesRequestsHang", func(t *testing.T) {
		s.PauseAPIServer(t)
		short, cancel := context.WithTimeout(ctx, time.Second)
		_, err := admin.CoreV1().Nodes().Get(short, "node1", metav1.GetOptions{})
		cancel()
		s.ResumeAPIServer(t)
		if err == nil {
			t.Fatal("get while paused succeeded, want a timeout")
		}
		eventually(t, 10*time.Second, "get after resume", func() error {
			_, err := admin.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
			return err
		})
	})

	s.Stop()
	s.Stop() // idempotent
}

// bindNodeRole grants user what the crosswire agent needs on Nodes.
// Re-binding is fine: AlreadyExists is ignored.
func bindNodeRole(t *testing.T, ctx context.Context, admin kubernetes.Interface, user string) {
	t.Helper()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "crosswire-nodes"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""},
			Resources: []string{"nodes"},
			Verbs:     []string{"get", "list", "watch", "patch"},
		}},
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ClusterRole: %v", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "crosswire-nodes-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ClusterRoleBinding: %v", err)
	}
}
