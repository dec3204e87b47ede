package controller

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	kruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

const (
	selfName = "me"
	kubePort = 51820
	// kubeQuiet is how long a test waits to be sure nothing more happens.
	kubeQuiet = 300 * time.Millisecond
	kubeWait  = 10 * time.Second
)

var nodesGVR = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}

func withUID() nodeOpt {
	return func(n *corev1.Node) { n.UID = types.UID("uid-" + n.Name) }
}

func withLabel(k, v string) nodeOpt {
	return func(n *corev1.Node) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
}

// kubeNode is mkNode with a UID, as the API server would set one.
func kubeNode(name string, opts ...nodeOpt) *corev1.Node {
	return mkNode(name, append([]nodeOpt{withUID()}, opts...)...)
}

type kubeRunner struct {
	t       *testing.T
	client  *fake.Clientset
	src     *KubeSource
	updates chan State
	done    chan error
	cancel  context.CancelFunc
	logs    *observer.ObservedLogs
}

// newKube returns a fake cluster holding nodes, and a source for selfName
// with key testKey(0xee). Every test checks, after Run has returned, that
// the source wrote to no Node but its own.
func newKube(t *testing.T, nodes ...*corev1.Node) *kubeRunner {
	t.Helper()
	objs := make([]kruntime.Object, len(nodes))
	for i, n := range nodes {
		objs[i] = n
	}
	core, logs := observer.New(zapcore.DebugLevel)
	r := &kubeRunner{
		t:       t,
		client:  fake.NewClientset(objs...),
		updates: make(chan State, 100),
		done:    make(chan error, 1),
		logs:    logs,
	}
	r.src = &KubeSource{
		Client: r.client, Self: selfName, SelfKey: pubKey(0xee), ListenPort: kubePort,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Log: zap.New(core),
		reportEvery: true,
	}
	t.Cleanup(r.checkOnlyOwnNodeWritten)
	return r
}

func (r *kubeRunner) start() {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.src.Run(ctx, Materialize(func(st State) { r.updates <- st })) }()
	r.t.Cleanup(func() { r.stop() })
}

// stop cancels Run and waits for it; safe to call twice.
func (r *kubeRunner) stop() {
	r.t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		r.t.Error("Run did not return after cancel")
	}
}

// checkOnlyOwnNodeWritten fails the test if any write to a Node other than
// selfName went through the client. Test fixtures change Nodes through the
// tracker, which records no action, so every action is the source's own.
func (r *kubeRunner) checkOnlyOwnNodeWritten() {
	for _, a := range r.client.Actions() {
		if a.GetResource().Resource != "nodes" {
			continue
		}
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		name := ""
		switch a := a.(type) {
		case k8stesting.PatchAction:
			name = a.GetName()
		case k8stesting.DeleteAction:
			name = a.GetName()
		case k8stesting.UpdateAction: // also matches CreateAction
			name = a.GetObject().(metav1.Object).GetName()
		}
		if name != selfName {
			r.t.Errorf("source wrote to Node %q (%s); it may only write its own Node %q", name, a.GetVerb(), selfName)
		}
	}
}

func (r *kubeRunner) expectUpdate(what string, want State) State {
	r.t.Helper()
	select {
	case st := <-r.updates:
		if !stateEqual(st, want) {
			r.t.Fatalf("%s: update\n%s\nwant\n%s", what, fmtState(st), fmtState(want))
		}
		return st
	case <-time.After(kubeWait):
		r.t.Fatalf("%s: no update", what)
	}
	return State{}
}

func (r *kubeRunner) expectNone(what string) {
	r.t.Helper()
	select {
	case st := <-r.updates:
		r.t.Fatalf("%s: unexpected update\n%s", what, fmtState(st))
	case <-time.After(kubeQuiet):
	}
}

// set replaces a Node as another actor would (kubelet, an operator).
func (r *kubeRunner) set(n *corev1.Node) {
	r.t.Helper()
	if err := r.client.Tracker().Update(nodesGVR, n, ""); err != nil {
		r.t.Fatal(err)
	}
}

func (r *kubeRunner) add(n *corev1.Node) {
	r.t.Helper()
	if err := r.client.Tracker().Create(nodesGVR, n, ""); err != nil {
		r.t.Fatal(err)
	}
}

func (r *kubeRunner) del(name string) {
	r.t.Helper()
	if err := r.client.Tracker().Delete(nodesGVR, "", name); err != nil {
		r.t.Fatal(err)
	}
}

func (r *kubeRunner) get(name string) *corev1.Node {
	r.t.Helper()
	obj, err := r.client.Tracker().Get(nodesGVR, "", name)
	if err != nil {
		r.t.Fatal(err)
	}
	return obj.(*corev1.Node).DeepCopy()
}

// waitFor polls cond until it holds or the test times out.
func (r *kubeRunner) waitFor(what string, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(kubeWait)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitAnnotations waits until selfName carries exactly key and endpoint
// (endpoint "" means absent).
func (r *kubeRunner) waitAnnotations(what, key, endpoint string) {
	r.t.Helper()
	var last map[string]string
	deadline := time.Now().Add(kubeWait)
	for {
		last = r.get(selfName).Annotations
		ep, hasEP := last[AnnotationEndpoint]
		if last[AnnotationPublicKey] == key && ep == endpoint && hasEP == (endpoint != "") {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: own Node annotations %v, want key %q endpoint %q", what, last, key, endpoint)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// patches counts the patch actions on Nodes so far.
func (r *kubeRunner) patches() int {
	n := 0
	for _, a := range r.client.Actions() {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "nodes" {
			n++
		}
	}
	return n
}

// events returns the Events in the fake cluster about Node name with reason.
func (r *kubeRunner) events(name, reason string) []corev1.Event {
	r.t.Helper()
	list, err := r.client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func (r *kubeRunner) waitEvents(name, reason string, n int) []corev1.Event {
	r.t.Helper()
	var evs []corev1.Event
	deadline := time.Now().Add(kubeWait)
	for {
		if evs = r.events(name, reason); len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("want %d %s events on %s, have %d", n, reason, name, len(evs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestKubePublishesOwnNode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		self     *corev1.Node
		endpoint string
	}{
		{"InternalIP and listen port", kubeNode(selfName, withIP("192.168.77.1"), withAddr(corev1.NodeExternalIP, "198.51.100.1"), withPodCIDR("10.244.0.0/24")), "192.168.77.1:51820"},
		{"IPv6 InternalIP in brackets", kubeNode(selfName, withIP("fd00::1"), withPodCIDR("10.244.0.0/24")), "[fd00::1]:51820"},
		{"override address wins", kubeNode(selfName, withIP("192.168.77.1"), withOverride("203.0.113.9"), withPodCIDR("10.244.0.0/24")), "203.0.113.9:51820"},
		{"override ip:port wins", kubeNode(selfName, withIP("192.168.77.1"), withOverride("203.0.113.9:4000"), withPodCIDR("10.244.0.0/24")), "203.0.113.9:4000"},
		{"IPv6 override address", kubeNode(selfName, withIP("192.168.77.1"), withOverride("2001:db8::9"), withPodCIDR("10.244.0.0/24")), "[2001:db8::9]:51820"},
		{"bad override falls back to InternalIP", kubeNode(selfName, withIP("192.168.77.1"), withOverride("nonsense"), withPodCIDR("10.244.0.0/24")), "192.168.77.1:51820"},
		{"stale endpoint replaced", kubeNode(selfName, withIP("192.168.77.1"), withEndpoint("192.168.77.99:1"), withKey(testKey(7)), withPodCIDR("10.244.0.0/24")), "192.168.77.1:51820"},
		{"no address: key only, stale endpoint removed", kubeNode(selfName, withEndpoint("192.168.77.99:1"), withPodCIDR("10.244.0.0/24")), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peerA := kubeNode("peer-a", withIP("192.168.77.2"), withPodCIDR("10.244.1.0/24"))
			peerB := kubeNode("peer-b", withIP("192.168.77.3"), withPodCIDR("10.244.2.0/24"), withKey(testKey(2)))
			r := newKube(t, tc.self, peerA, peerB)
			r.start()
			r.waitAnnotations("publish", testKey(0xee), tc.endpoint)
			evs := r.waitEvents(selfName, ReasonKeyPublished, 1)
			e := evs[0]
			if e.Type != corev1.EventTypeNormal || e.InvolvedObject.Kind != "Node" || e.InvolvedObject.UID != "uid-"+selfName ||
				e.Source.Component != EventComponent || e.Source.Host != selfName || !strings.Contains(e.Message, testKey(0xee)) {
				t.Errorf("publish event %+v", e)
			}
			// Nothing more happens once the annotations are right.
			time.Sleep(kubeQuiet)
			if n := r.patches(); n != 1 {
				t.Errorf("%d patches, want 1", n)
			}
			if evs := r.events(selfName, ReasonKeyPublished); len(evs) != 1 || evs[0].Count > 1 {
				t.Errorf("publish events %+v, want one", evs)
			}
			// Other Nodes are untouched.
			for _, want := range []*corev1.Node{peerA, peerB} {
				if got := r.get(want.Name); !mapsEqual(got.Annotations, want.Annotations) {
					t.Errorf("%s annotations changed: %v, was %v", want.Name, got.Annotations, want.Annotations)
				}
			}
			r.stop()
			// The override stays the operator's: only the two published
			// annotations changed.
			got := r.get(selfName)
			if got.Annotations[AnnotationEndpointOverride] != tc.self.Annotations[AnnotationEndpointOverride] {
				t.Errorf("override changed to %q", got.Annotations[AnnotationEndpointOverride])
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestKubeRepublishes(t *testing.T) {
	self := kubeNode(selfName, withIP("192.168.77.1"), withPodCIDR("10.244.0.0/24"))
	peer := kubeNode("peer-a", withIP("192.168.77.2"), withPodCIDR("10.244.1.0/24"))
	r := newKube(t, self, peer)
	r.start()
	r.waitAnnotations("first publish", testKey(0xee), "192.168.77.1:51820")
	r.waitFor("1 patch", func() bool { return r.patches() == 1 })

	n := r.get(selfName)
	delete(n.Annotations, AnnotationPublicKey)
	delete(n.Annotations, AnnotationEndpoint)
	r.set(n)
	r.waitAnnotations("after removal", testKey(0xee), "192.168.77.1:51820")

	n = r.get(selfName)
	n.Annotations[AnnotationPublicKey] = testKey(9)
	r.set(n)
	r.waitAnnotations("after key change", testKey(0xee), "192.168.77.1:51820")

	n = r.get(selfName)
	n.Annotations[AnnotationEndpoint] = "192.168.77.200:9"
	r.set(n)
	r.waitAnnotations("after endpoint change", testKey(0xee), "192.168.77.1:51820")

	// The node's address changes: the endpoint follows.
	n = r.get(selfName)
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.77.50"}}
	r.set(n)
	r.waitAnnotations("after InternalIP change", testKey(0xee), "192.168.77.50:51820")

	// An operator sets an override: published as the endpoint.
	n = r.get(selfName)
	n.Annotations[AnnotationEndpointOverride] = "203.0.113.1:443"
	r.set(n)
	r.waitAnnotations("after override", testKey(0xee), "203.0.113.1:443")

	// An unrelated change to its own Node or a change to another Node does
	// not patch.
	r.set(kubeNode(selfName, withIP("192.168.77.50"), withPodCIDR("10.244.0.0/24"), withLabel("x", "y"),
		withKey(testKey(0xee)), withOverride("203.0.113.1:443"), withEndpoint("203.0.113.1:443")))
	peer2 := r.get("peer-a")
	peer2.Labels = map[string]string{"a": "b"}
	r.set(peer2)
	time.Sleep(kubeQuiet)
	if got := r.patches(); got != 6 {
		t.Errorf("%d patches, want 6 (one per drift)", got)
	}
	if evs := r.events(selfName, ReasonKeyPublished); len(evs) == 0 {
		t.Error("no publish events")
	}
}

func TestKubePublishRetriesWithBackoff(t *testing.T) {
	self := kubeNode(selfName, withIP("192.168.77.1"), withPodCIDR("10.244.0.0/24"))
	r := newKube(t, self)
	var failures atomic.Int32
	r.client.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, kruntime.Object, error) {
		if failures.Add(1) <= 3 {
			return true, nil, errors.New("injected: apiserver unavailable")
		}
		return false, nil, nil
	})
	start := time.Now()
	r.start()
	r.waitAnnotations("publish after failures", testKey(0xee), "192.168.77.1:51820")
	// Backoff 10ms, 20ms, 40ms (RetryMax 50ms): at least 70ms in all.
	if el := time.Since(start); el < 70*time.Millisecond {
		t.Errorf("published after %v: retries not backed off", el)
	}
	time.Sleep(kubeQuiet)
	if got := r.patches(); got != 4 {
		t.Errorf("%d patch attempts, want 4 (3 failed, 1 good)", got)
	}
	if r.logs.FilterMessage("publishing key and endpoint failed; will retry").Len() != 3 {
		t.Errorf("failures not logged: %v", r.logs.All())
	}
}

func TestKubeNoUpdateBeforeSync(t *testing.T) {
	self := kubeNode(selfName, withIP("192.168.77.1"), withPodCIDR("10.244.0.0/24"))
	peerA := kubeNode("peer-a", withIP("192.168.77.2"), withPodCIDR("10.244.1.0/24"), withKey(testKey(1)))
	peerB := kubeNode("peer-b", withIP("192.168.77.3"), withPodCIDRs("10.244.2.0/24", "fd00:10:244:2::/64"), withKey(testKey(2)), withEndpoint("192.168.77.3:4000"))
	peerC := kubeNode("peer-c", withIP("192.168.77.4"), withCIDRAnn("10.244.3.0/24")) // no key yet
	r := newKube(t, self, peerA, peerB, peerC)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	listed := make(chan struct{}, 10)
	r.client.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, kruntime.Object, error) {
		listed <- struct{}{}
		<-release
		return false, nil, nil
	})
	// The fake holds its lock while a reactor runs, so Actions() would
	// block behind the stuck list: count patches on the side.
	var patched atomic.Int32
	r.client.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, kruntime.Object, error) {
		patched.Add(1)
		return false, nil, nil
	})
	r.start()
	select {
	case <-listed:
	case <-time.After(kubeWait):
		t.Fatal("informer never listed Nodes")
	}
	r.expectNone("while the initial list is blocked")
	if n := patched.Load(); n != 0 {
		t.Errorf("%d patches before the cache synced", n)
	}
	releaseOnce.Do(func() { close(release) })

	peer := func(name string, key wgtun.Key, ep string, cidrs ...string) proxy.Peer {
		return proxy.Peer{Name: name, PublicKey: key, Endpoint: ap(ep), PodCIDRs: pfx(cidrs...)}
	}
	pA := peer("peer-a", pubKey(1), "192.168.77.2:51820", "10.244.1.0/24")
	pB := peer("peer-b", pubKey(2), "192.168.77.3:4000", "10.244.2.0/24", "fd00:10:244:2::/64")
	pC := peer("peer-c", wgtun.Key{}, "192.168.77.4:51820", "10.244.3.0/24")
	st := func(peers ...proxy.Peer) State {
		return State{SelfFound: true, Local: pfx("10.244.0.0/24"), Peers: peers}
	}
	r.expectUpdate("first state", st(pA, pB, pC))
	// Publishing its own annotations changes nothing for the peers.
	r.waitAnnotations("publish", testKey(0xee), "192.168.77.1:51820")
	r.expectNone("after own publication")

	// Add.
	r.add(kubeNode("peer-d", withIP("192.168.77.5"), withPodCIDR("10.244.4.0/24"), withKey(testKey(4))))
	pD := peer("peer-d", pubKey(4), "192.168.77.5:51820", "10.244.4.0/24")
	r.expectUpdate("peer-d added", st(pA, pB, pC, pD))

	// Key published by peer-c.
	n := r.get("peer-c")
	n.Annotations[AnnotationPublicKey] = testKey(3)
	r.set(n)
	pC.PublicKey = pubKey(3)
	r.expectUpdate("peer-c key", st(pA, pB, pC, pD))

	// Key change.
	n = r.get("peer-a")
	n.Annotations = map[string]string{AnnotationPublicKey: testKey(11)}
	r.set(n)
	pA.PublicKey = pubKey(11)
	r.expectUpdate("peer-a key change", st(pA, pB, pC, pD))

	// CIDR change.
	n = r.get("peer-d")
	n.Spec.PodCIDR = "10.244.44.0/24"
	r.set(n)
	pD.PodCIDRs = pfx("10.244.44.0/24")
	r.expectUpdate("peer-d CIDR change", st(pA, pB, pC, pD))

	// Address change.
	n = r.get("peer-a")
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.77.22"}}
	r.set(n)
	pA.Endpoint = ap("192.168.77.22:51820")
	r.expectUpdate("peer-a address change", st(pA, pB, pC, pD))

	// Delete.
	r.del("peer-b")
	r.expectUpdate("peer-b deleted", st(pA, pC, pD))

	// Own pod CIDR change.
	n = r.get(selfName)
	n.Spec.PodCIDR = "10.244.100.0/24"
	r.set(n)
	r.expectUpdate("own CIDR change", State{SelfFound: true, Local: pfx("10.244.100.0/24"), Peers: []proxy.Peer{pA, pC, pD}})
}

func TestKubeIdenticalRebuildsDoNotUpdate(t *testing.T) {
	self := kubeNode(selfName, withIP("192.168.77.1"), withPodCIDR("10.244.0.0/24"), withKey(testKey(0xee)), withEndpoint("192.168.77.1:51820"))
	peerA := kubeNode("peer-a", withIP("192.168.77.2"), withPodCIDR("10.244.1.0/24"), withKey(testKey(1)))
	r := newKube(t, self, peerA)
	r.start()
	want := State{SelfFound: true, Local: pfx("10.244.0.0/24"), Peers: []proxy.Peer{
		{Name: "peer-a", PublicKey: pubKey(1), Endpoint: ap("192.168.77.2:51820"), PodCIDRs: pfx("10.244.1.0/24")},
	}}
	r.expectUpdate("first", want)
	// Status-only churn (conditions, labels, irrelevant addresses) as kubelet
	// produces all the time: rebuilds, but no update.
	for i := range 5 {
		n := r.get("peer-a")
		n.Labels = map[string]string{"gen": fmt.Sprint(i)}
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: fmt.Sprint("h", i)})
		r.set(n)
		s := r.get(selfName)
		s.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: fmt.Sprint(i)}}
		r.set(s)
	}
	r.expectNone("after status-only changes")
	if n := r.patches(); n != 0 {
		t.Errorf("%d patches although the annotations were already right", n)
	}
	// A real change still comes through.
	n := r.get("peer-a")
	n.Spec.PodCIDR = "10.244.11.0/24"
	r.set(n)
	want.Peers[0].PodCIDRs = pfx("10.244.11.0/24")
	r.expectUpdate("real change", want)
}

func TestKubeRejections(t *testing.T) {
	self := kubeNode(selfName, created(0), withIP("192.168.77.1"), withPodCIDR("10.244.0.0/24"))
	good1 := kubeNode("good-1", created(1), withIP("192.168.77.2"), withPodCIDR("10.244.1.0/24"), withKey(testKey(1)))
	good2 := kubeNode("good-2", created(2), withIP("192.168.77.3"), withPodCIDR("10.244.2.0/24"), withKey(testKey(2)))
	bad := []*corev1.Node{
		kubeNode("bad-key", created(3), withIP("192.168.77.10"), withPodCIDR("10.244.10.0/24"), withKey("not-a-key")),
		kubeNode("bad-cidr", created(3), withIP("192.168.77.11"), withPodCIDR("10.244.11.0/33")),
		kubeNode("overlap", created(3), withIP("192.168.77.12"), withPodCIDR("10.244.1.128/25"), withKey(testKey(12))),
		kubeNode("dup-key", created(3), withIP("192.168.77.13"), withPodCIDR("10.244.13.0/24"), withKey(testKey(1))),
		kubeNode("ep-in-pods", created(3), withIP("10.244.2.7"), withPodCIDR("10.244.14.0/24"), withKey(testKey(14))),
	}
	reasons := map[string]string{
		"bad-key":    "annotation crosswire.dev/public-key: not base64",
		"bad-cidr":   `spec.podCIDR: CIDR "10.244.11.0/33"`,
		"overlap":    "pod CIDR 10.244.1.128/25 overlaps 10.244.1.0/24, already claimed by an older node",
		"dup-key":    "public key already used by node good-1",
		"ep-in-pods": "endpoint 10.244.2.7:51820 lies inside pod CIDR 10.244.2.0/24",
	}
	goodState := State{SelfFound: true, Local: pfx("10.244.0.0/24"), Peers: []proxy.Peer{
		{Name: "good-1", PublicKey: pubKey(1), Endpoint: ap("192.168.77.2:51820"), PodCIDRs: pfx("10.244.1.0/24")},
		{Name: "good-2", PublicKey: pubKey(2), Endpoint: ap("192.168.77.3:51820"), PodCIDRs: pfx("10.244.2.0/24")},
	}}

	// The reference: only the good nodes.
	ref := newKube(t, self.DeepCopy(), good1.DeepCopy(), good2.DeepCopy())
	ref.start()
	ref.expectUpdate("good nodes only", goodState)
	ref.stop()

	r := newKube(t, append([]*corev1.Node{self, good1, good2}, bad...)...)
	r.start()
	var st State
	select {
	case st = <-r.updates:
	case <-time.After(kubeWait):
		t.Fatal("no update")
	}
	withBad := st
	withBad.Rejected = nil
	if !stateEqual(withBad, goodState) {
		t.Fatalf("bad nodes changed the good peers:\n%s\nwant\n%s", fmtState(st), fmtState(goodState))
	}
	var rejectedNames []string
	for _, rj := range st.Rejected {
		rejectedNames = append(rejectedNames, rj.Node)
		if !strings.Contains(rj.Reason, reasons[rj.Node]) {
			t.Errorf("%s rejected for %q, want %q", rj.Node, rj.Reason, reasons[rj.Node])
		}
	}
	if want := []string{"bad-cidr", "bad-key", "dup-key", "ep-in-pods", "overlap"}; !slices.Equal(rejectedNames, want) {
		t.Errorf("rejected %v, want %v", rejectedNames, want)
	}
	for _, n := range bad {
		evs := r.waitEvents(n.Name, ReasonNodeRejected, 1)
		e := evs[0]
		if e.Type != corev1.EventTypeWarning || e.InvolvedObject.Kind != "Node" || e.InvolvedObject.UID != n.UID ||
			!strings.Contains(e.Message, reasons[n.Name]) || e.Source.Component != EventComponent || e.Source.Host != selfName {
			t.Errorf("event for %s: %+v", n.Name, e)
		}
		if r.logs.FilterMessage("node rejected").FilterField(zap.String("peer", n.Name)).Len() != 1 {
			t.Errorf("rejection of %s not logged once", n.Name)
		}
	}
	for _, n := range []string{selfName, "good-1", "good-2"} {
		if evs := r.events(n, ReasonNodeRejected); len(evs) != 0 {
			t.Errorf("rejection event on good node %s: %+v", n, evs)
		}
	}

	// Rebuilds with the same reasons record nothing new.
	n := r.get("good-2")
	n.Labels = map[string]string{"touch": "1"}
	r.set(n)
	n = r.get("bad-key")
	n.Labels = map[string]string{"touch": "1"}
	r.set(n)
	r.expectNone("identical rebuild")
	for _, b := range bad {
		if evs := r.events(b.Name, ReasonNodeRejected); len(evs) != 1 || evs[0].Count != 1 {
			t.Errorf("events for %s after identical rebuild: %+v", b.Name, evs)
		}
	}

	// A new reason is recorded again.
	n = r.get("bad-key")
	n.Annotations[AnnotationPublicKey] = "AAAA"
	r.set(n)
	select {
	case st = <-r.updates: // the reason is part of the state
	case <-time.After(kubeWait):
		t.Fatal("no update for the new reason")
	}
	r.waitFor("second bad-key event", func() bool {
		for _, e := range r.events("bad-key", ReasonNodeRejected) {
			if strings.Contains(e.Message, "key is 3 bytes, want 32") {
				return true
			}
		}
		return false
	})
	// Fixed: the node joins as a peer, no event.
	n = r.get("bad-key")
	n.Annotations[AnnotationPublicKey] = testKey(10)
	r.set(n)
	r.expectUpdate("bad-key fixed", State{
		SelfFound: true, Local: goodState.Local,
		Peers: append([]proxy.Peer{{Name: "bad-key", PublicKey: pubKey(10), Endpoint: ap("192.168.77.10:51820"), PodCIDRs: pfx("10.244.10.0/24")}},
			goodState.Peers...),
		Rejected: slices.DeleteFunc(slices.Clone(st.Rejected), func(rj Rejection) bool { return rj.Node == "bad-key" }),
	})
	time.Sleep(kubeQuiet)
	if evs := r.events("bad-key", ReasonNodeRejected); len(evs) != 2 {
		t.Errorf("bad-key events %d, want 2", len(evs))
	}
}

func TestKubeCancelNoLeak(t *testing.T) {
	settle := func() int {
		// Let goroutines of earlier tests finish.
		time.Sleep(50 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	waitGoroutines := func(t *testing.T, base int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines, %d before Run:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	nodes := func() []*corev1.Node {
		return []*corev1.Node{
			kubeNode(selfName, created(0), withIP("192.168.77.1"), withPodCIDR("10.244.0.0/24")),
			kubeNode("peer-a", created(1), withIP("192.168.77.2"), withPodCIDR("10.244.1.0/24")),
			kubeNode("bad", created(2), withPodCIDR("10.244.1.0/24")),
		}
	}

	t.Run("after sync", func(t *testing.T) {
		base := settle()
		r := newKube(t, nodes()...)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.src.Run(ctx, Materialize(func(st State) { r.updates <- st })) }()
		<-r.updates
		r.waitAnnotations("publish", testKey(0xee), "192.168.77.1:51820")
		r.waitEvents("bad", ReasonNodeRejected, 1)
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("Run took %v to return", el)
		}
		waitGoroutines(t, base)
	})

	t.Run("before sync", func(t *testing.T) {
		base := settle()
		r := newKube(t, nodes()...)
		release := make(chan struct{})
		listed := make(chan struct{}, 10)
		r.client.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, kruntime.Object, error) {
			listed <- struct{}{}
			<-release
			return false, nil, nil
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- r.src.Run(ctx, Materialize(func(State) { t.Error("update called before the cache synced") }))
		}()
		<-listed
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		// The fake's List call is stuck in our reactor, not in Run's code.
		close(release)
		waitGoroutines(t, base)
		if n := r.patches(); n != 0 {
			t.Errorf("%d patches before sync", n)
		}
	})
}

func TestKubeConfigErrors(t *testing.T) {
	for _, s := range []*KubeSource{
		{Self: "me"},
		{Client: fake.NewClientset()},
	} {
		if err := s.Run(context.Background(), Materialize(func(State) {})); err == nil {
			t.Errorf("Run(%+v) accepted an unusable configuration", s)
		}
	}
}

func TestSelfEndpoint(t *testing.T) {
	for _, tc := range []struct {
		node    *corev1.Node
		want    string
		wantErr string
	}{
		{mkNode("a", withIP("192.168.1.1")), "192.168.1.1:51820", ""},
		{mkNode("a", withAddr(corev1.NodeExternalIP, "198.51.100.1"), withIP("fd00::1"), withIP("192.168.1.1")), "[fd00::1]:51820", ""},
		{mkNode("a", withIP("192.168.1.1"), withOverride(" 203.0.113.1 ")), "203.0.113.1:51820", ""},
		{mkNode("a", withIP("192.168.1.1"), withOverride("[2001:db8::1]:7")), "[2001:db8::1]:7", ""},
		{mkNode("a", withIP("192.168.1.1"), withOverride("127.0.0.1")), "192.168.1.1:51820", "not a unicast node address"},
		{mkNode("a", withOverride("x")), "", "annotation crosswire.dev/endpoint-override"},
		{mkNode("a", withIP("::ffff:192.168.1.1")), "192.168.1.1:51820", ""},
		{mkNode("a"), "", ""},
		{mkNode("a", withIP("bogus")), "", `InternalIP "bogus"`},
	} {
		ep, err := SelfEndpoint(tc.node, kubePort)
		got := ""
		if ep.IsValid() {
			got = ep.String()
		}
		if got != tc.want {
			t.Errorf("%v %v: endpoint %q, want %q", tc.node.Annotations, tc.node.Status.Addresses, got, tc.want)
		}
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%v %v: error %v, want %q", tc.node.Annotations, tc.node.Status.Addresses, err, tc.wantErr)
		}
	}
}

// A bare address in the override is read by peers with the default port,
// exactly as the node publishes it.
func TestOverrideBareAddressAtPeers(t *testing.T) {
	info, err := ParseNode(mkNode("a", withOverride("203.0.113.5"), withEndpoint("192.168.77.1:4000")), 51820)
	if err != nil || info.Endpoint != ap("203.0.113.5:51820") {
		t.Errorf("bare override: %v %v", info.Endpoint, err)
	}
	if _, err := ParseNode(mkNode("a", withOverride("203.0.113.5")), 0); err == nil || !strings.Contains(err.Error(), "port 0") {
		t.Errorf("bare override with no default port: %v", err)
	}
	if _, err := ParseNode(mkNode("a", withOverride("[203.0.113.5]")), 51820); err == nil {
		t.Error("bracketed address without port accepted")
	}
}

// TestKubeRejectionEventsOnlyFromReporters: an agent records the Event of
// a rejected Node only when it is one of that Node's reporters, and logs
// every rejection either way.
func TestKubeRejectionEventsOnlyFromReporters(t *testing.T) {
	nodes := []*corev1.Node{kubeNode(selfName, created(0), withIP("192.168.77.1"), withPodCIDR("10.244.0.0/24"))}
	for i := 1; i <= 12; i++ {
		nodes = append(nodes, kubeNode(fmt.Sprintf("good-%d", i), created(1), withIP(fmt.Sprintf("192.168.77.%d", 10+i)),
			withPodCIDR(fmt.Sprintf("10.244.%d.0/24", i)), withKey(testKey(byte(i)))))
	}
	// Reporters are chosen among the nodes that run an agent: this one and
	// the good peers. Names for the bad Nodes such that this agent reports
	// some of them and not others (hashing decides; the first prefix that
	// does wins).
	var agents []string
	for _, n := range nodes {
		agents = append(agents, n.Name)
	}
	var bad []string
	for p := 0; ; p++ {
		bad = nil
		for i := range 20 {
			bad = append(bad, fmt.Sprintf("bad%d-%d", p, i))
		}
		mine := 0
		for _, name := range bad {
			if reports(slices.Values(agents), true, name, selfName) {
				mine++
			}
		}
		if mine > 0 && mine < len(bad) {
			break
		}
	}
	for i, name := range bad {
		nodes = append(nodes, kubeNode(name, created(2), withIP(fmt.Sprintf("192.168.78.%d", 1+i)),
			withPodCIDR(fmt.Sprintf("10.245.%d.0/24", i)), withKey("not-a-key")))
	}
	r := newKube(t, nodes...)
	r.src.reportEvery = false
	r.start()
	<-r.updates
	for _, name := range bad {
		if reports(slices.Values(agents), true, name, selfName) {
			r.waitEvents(name, ReasonNodeRejected, 1)
		}
	}
	time.Sleep(200 * time.Millisecond) // Events are recorded asynchronously
	for _, name := range bad {
		want := 0
		if reports(slices.Values(agents), true, name, selfName) {
			want = 1
		}
		if evs := r.events(name, ReasonNodeRejected); len(evs) != want {
			t.Errorf("%s: %d Events, want %d", name, len(evs), want)
		}
		if r.logs.FilterMessage("node rejected").FilterField(zap.String("peer", name)).Len() != 1 {
			t.Errorf("rejection of %s not logged once", name)
		}
	}
}
