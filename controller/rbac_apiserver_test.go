package controller

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	authv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/wgtun"
)

// The agent's identity in the RBAC test: a ServiceAccount, as the chart
// runs it, bound to a ClusterRole and a Role whose rules the test sets.
const (
	rbacNamespace = "crosswire-system"
	rbacSA        = "crosswire"
	rbacRole      = "crosswire-rbac-test"
	rbacSelf      = "rbac-self"
	rbacPort      = 51820
)

func rbacKey(b byte) wgtun.Key { return wgtun.Key(bytes.Repeat([]byte{b}, 32)) }

// rbacBadKey is a public-key annotation Build rejects.
const rbacBadKey = "not-a-key"

// rbacOutcome is what one run of the agent's Kubernetes side achieved; each
// field is one behaviour a rule exists for.
type rbacOutcome struct {
	synced    bool // the Node informer listed and the first state came out
	published bool // the key and endpoint reached the agent's own Node
	watched   bool // no list/watch error was reported
	event     bool // a rejected Node got its Warning Event
	repeated  bool // the same rejection, recorded again, bumped that Event's count to 2
	logs      []string
}

func (o rbacOutcome) String() string {
	return fmt.Sprintf("synced=%v published=%v watched=%v event=%v repeated=%v", o.synced, o.published, o.watched, o.event, o.repeated)
}

// rbacEnv is a real API server with the agent's ServiceAccount.
type rbacEnv struct {
	t     *testing.T
	admin kubernetes.Interface
	agent kubernetes.Interface
}

func newRBACEnv(t *testing.T) *rbacEnv {
	t.Helper()
	srv := apiserver.Start(t, apiserver.Options{})
	admin := srv.Client(t)
	ctx := t.Context()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rbacNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(rbacNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: rbacSA}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: rbacRole}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: rbacRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: rbacRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: rbacSA, Namespace: rbacNamespace}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CoreV1().ServiceAccounts(rbacNamespace).CreateToken(ctx, rbacSA, &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{Host: srv.URL, BearerToken: tok.Status.Token, QPS: 500, Burst: 1000,
		TLSClientConfig: rest.TLSClientConfig{CAData: srv.CAData}, UserAgent: EventComponent}
	agent, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rbacEnv{t: t, admin: admin, agent: agent}
}

// setRules makes the agent's ClusterRole exactly rules, and waits until
// the authorizer answers accordingly (it reads roles through an informer).
func (e *rbacEnv) setRules(rules []RBACRule) {
	e.t.Helper()
	ctx := e.t.Context()
	// Cluster-wide rules go into the ClusterRole, the others into the Role
	// of their namespace, as the chart does.
	role, err := e.admin.RbacV1().ClusterRoles().Get(ctx, rbacRole, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	role.Rules = nil
	nsRules := map[string][]rbacv1.PolicyRule{}
	for _, r := range rules {
		pr := rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: r.Verbs}
		if r.Namespace == "" {
			role.Rules = append(role.Rules, pr)
		} else {
			nsRules[r.Namespace] = append(nsRules[r.Namespace], pr)
		}
	}
	if _, err := e.admin.RbacV1().ClusterRoles().Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	for _, r := range RBACRules() {
		if r.Namespace != "" {
			e.setRole(r.Namespace, nsRules[r.Namespace])
		}
	}
	// Every (group, resource, verb, namespace) of the test, allowed exactly
	// when rules grant it. Events elsewhere than in their namespace never.
	type probe struct{ group, resource, verb, ns string }
	var probes []probe
	for _, r := range RBACRules() {
		for _, v := range r.Verbs {
			probes = append(probes, probe{r.APIGroups[0], r.Resources[0], v, r.Namespace})
		}
	}
	probes = append(probes, probe{"", "nodes", "get", ""}, probe{"events.k8s.io", "events", "create", "default"},
		probe{"", "events", "create", "kube-system"}, probe{"", "events", "patch", "kube-system"})
	granted := func(p probe) bool {
		for _, r := range rules {
			if (r.Namespace == "" || r.Namespace == p.ns) && slices.Contains(r.APIGroups, p.group) &&
				slices.Contains(r.Resources, p.resource) && slices.Contains(r.Verbs, p.verb) {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range probes {
		for {
			rev, err := e.agent.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
				Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{Group: p.group, Resource: p.resource, Verb: p.verb, Namespace: p.ns}},
			}, metav1.CreateOptions{})
			if err != nil {
				e.t.Fatal(err)
			}
			if rev.Status.Allowed == granted(p) {
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("authorizer still answers %v for %+v", rev.Status.Allowed, p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// setRole makes the agent's Role in ns hold exactly rules, creating it and
// its binding the first time.
func (e *rbacEnv) setRole(ns string, rules []rbacv1.PolicyRule) {
	e.t.Helper()
	ctx := e.t.Context()
	role, err := e.admin.RbacV1().Roles(ns).Get(ctx, rbacRole, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		role = &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: rbacRole, Namespace: ns}, Rules: rules}
		if _, err := e.admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: rbacRole, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: rbacRole},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: rbacSA, Namespace: rbacNamespace}},
		}
		if _, err := e.admin.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	if err != nil {
		e.t.Fatal(err)
	}
	role.Rules = rules
	if _, err := e.admin.RbacV1().Roles(ns).Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// reset puts the cluster back to: the agent's own Node without crosswire
// annotations, one peer with a key, no other Node, no Event.
func (e *rbacEnv) reset() {
	e.t.Helper()
	ctx := e.t.Context()
	if err := e.admin.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.admin.CoreV1().Events("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.createNode(rbacSelf, "10.244.1.0/24", "192.168.77.11", "")
	e.createNode("rbac-peer", "10.244.2.0/24", "192.168.77.12", rbacKey(2).String())
}

func (e *rbacEnv) createNode(name, cidr, ip, key string) {
	e.t.Helper()
	ctx := e.t.Context()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{PodCIDRs: []string{cidr}}}
	if key != "" {
		n.Annotations = map[string]string{AnnotationPublicKey: key}
	}
	created, err := e.admin.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	created.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	if _, err := e.admin.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *rbacEnv) setKey(name, key string) {
	e.t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, AnnotationPublicKey, key)
	if _, err := e.admin.CoreV1().Nodes().Patch(e.t.Context(), name, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// rejectionCount is the count of the Warning Event on a Node (0: none).
func (e *rbacEnv) rejectionCount(name string) int32 {
	e.t.Helper()
	evs, err := e.admin.CoreV1().Events("default").List(e.t.Context(), metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + name + ",reason=" + ReasonNodeRejected,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	var n int32
	for _, ev := range evs.Items {
		n += ev.Count
	}
	return n
}

// Bounds of one step: how long a behaviour may take before it counts as
// broken. With the shipped rules every step takes well under a second.
const (
	rbacStepTimeout = 8 * time.Second
	// rbacEventWait is how long an Event is waited for after the state
	// that records it came out.
	rbacEventWait = 4 * time.Second
)

// noWatchList is a clientset whose informers do not stream their initial
// list over a watch (client-go's WatchListClient), as with an API server
// that does not serve streaming lists: they list, then watch.
type noWatchList struct{ kubernetes.Interface }

func (noWatchList) IsWatchListSemanticsUnSupported() bool { return true }

// exercise runs KubeSource as the ServiceAccount through every behaviour
// the rules are for, and reports which of them worked. classicList makes
// its informer list and then watch instead of streaming the list.
func (e *rbacEnv) exercise(classicList bool) (out rbacOutcome) {
	e.t.Helper()
	e.reset()
	client := e.agent
	if classicList {
		client = noWatchList{client}
	}
	core, logs := observer.New(zap.DebugLevel)
	src := &KubeSource{Client: client, Self: rbacSelf, SelfKey: rbacKey(1), ListenPort: rbacPort,
		RetryBase: 100 * time.Millisecond, RetryMax: time.Second, Log: zap.New(core), reportEvery: true}
	updates := make(chan State, 256)
	ctx, cancel := context.WithCancel(e.t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, Materialize(func(st State) { updates <- st })) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
		for _, l := range logs.All() {
			out.logs = append(out.logs, l.Message+" "+fmt.Sprint(l.ContextMap()))
		}
	}()
	waitFor := func(ok func(State) bool) bool {
		deadline := time.After(rbacStepTimeout)
		for {
			select {
			case st := <-updates:
				if ok(st) {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}
	poll := func(d time.Duration, ok func() bool) bool {
		for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
			if ok() {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
		}
	}
	rejected := func(st State) bool {
		return slices.ContainsFunc(st.Rejected, func(r Rejection) bool { return r.Node == "rbac-bad" })
	}
	defer func() {
		out.watched = len(logs.FilterMessage("list/watch of Nodes failed; retrying").All()) == 0
	}()

	out.synced = waitFor(func(st State) bool { return st.SelfFound && len(st.Peers) == 1 })
	if !out.synced {
		return out
	}
	out.published = poll(rbacStepTimeout, func() bool {
		n, err := e.admin.CoreV1().Nodes().Get(e.t.Context(), rbacSelf, metav1.GetOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		return n.Annotations[AnnotationPublicKey] == rbacKey(1).String() &&
			n.Annotations[AnnotationEndpoint] == fmt.Sprintf("192.168.77.11:%d", rbacPort)
	})

	// A Node created after the sync, with a bad key: the watch brings it,
	// the agent rejects it and records a Warning Event. A step that does
	// not happen leaves the rest of out false.
	e.createNode("rbac-bad", "10.244.3.0/24", "192.168.77.13", rbacBadKey)
	if !waitFor(rejected) {
		return out
	}
	out.event = poll(rbacEventWait, func() bool { return e.rejectionCount("rbac-bad") == 1 })
	// Fixed, then broken the same way again: the recorder's correlator
	// sees the same Event and patches its count.
	e.setKey("rbac-bad", rbacKey(3).String())
	if !waitFor(func(st State) bool { return !rejected(st) && len(st.Peers) == 2 }) {
		return out
	}
	e.setKey("rbac-bad", rbacBadKey)
	if !waitFor(rejected) {
		return out
	}
	out.repeated = out.event && poll(rbacEventWait, func() bool { return e.rejectionCount("rbac-bad") == 2 })
	return out
}

// without returns rules minus one verb of one rule (the rule disappears
// when it has no verb left).
func without(rules []RBACRule, i int, verb string) []RBACRule {
	var out []RBACRule
	for j, r := range rules {
		if j == i {
			r.Verbs = slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == verb })
			if len(r.Verbs) == 0 {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// TestRBACRulesAreLeastPrivilege runs the agent's Kubernetes side as a
// ServiceAccount bound to exactly RBACRules against a real kube-apiserver:
// everything works. Then each verb is removed in turn, and the behaviour
// it exists for breaks, with the API server's Forbidden in the agent's log
// where the agent logs it. A verb without such a behaviour fails the test:
// it would not be least privilege.
func TestRBACRulesAreLeastPrivilege(t *testing.T) {
	e := newRBACEnv(t)
	all := rbacOutcome{synced: true, published: true, watched: true, event: true, repeated: true}

	e.setRules(RBACRules())
	for _, classic := range []bool{false, true} {
		if got := e.exercise(classic); got.String() != all.String() {
			t.Fatalf("with exactly RBACRules (list then watch: %v): %s, want %s\nlogs:\n%s", classic, got, all, strings.Join(got.logs, "\n"))
		}
	}

	for i, r := range RBACRules() {
		for _, verb := range r.Verbs {
			name := fmt.Sprintf("without %s/%s %s", r.APIGroups[0], r.Resources[0], verb)
			t.Run(name, func(t *testing.T) {
				parent := e.t
				e.t = t
				defer func() { e.t = parent }()
				e.setRules(without(RBACRules(), i, verb))
				want, forbidden, classic, relistOnly := all, "", false, false
				switch r.Resources[0] + " " + verb {
				case "nodes list":
					// client-go streams the initial list over the watch when
					// the server can (v1.37 does; the agent needs no list
					// there), and falls back to a list otherwise.
					if got := e.exercise(false); got.String() != all.String() {
						t.Errorf("streaming list: %s, want %s", got, all)
					}
					// Without the cache nothing else happens: no state,
					// no publication (it reads the own Node from the
					// cache), no Event.
					classic = true
					want = rbacOutcome{}
					forbidden = `cannot list resource "nodes"`
				case "nodes watch":
					// Changes then arrive only when the informer lists
					// again, after a backoff that grows to 30 s: whether
					// the later steps make it in time is not the point.
					want.watched = false
					forbidden = `cannot watch resource "nodes"`
					relistOnly = true
				case "nodes patch":
					want.published = false
					forbidden = `cannot patch resource "nodes"`
				case "events create":
					want.event, want.repeated = false, false
				case "events patch":
					want.repeated = false
				default:
					t.Fatalf("no expectation for %s: a verb nothing needs is not least privilege", name)
				}
				got := e.exercise(classic)
				t.Logf("%s: %s", name, got)
				if relistOnly {
					got.event, got.repeated = want.event, want.repeated
				}
				if got.String() != want.String() {
					t.Errorf("%s, want %s\nlogs:\n%s", got, want, strings.Join(got.logs, "\n"))
				}
				if forbidden != "" && !slices.ContainsFunc(got.logs, func(l string) bool { return strings.Contains(l, forbidden) }) {
					t.Errorf("no log says %q; logs:\n%s", forbidden, strings.Join(got.logs, "\n"))
				}
			})
		}
	}
}
