package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/crosswire/crosswire/wgtun"
)

// Event reasons and the event source crosswire records with.
const (
	ReasonNodeRejected = "CrosswireNodeRejected"
	ReasonKeyPublished = "CrosswireKeyPublished"
	EventComponent     = "crosswire-agent"
)

// Work queue keys: one per Node ("node/" and its name; a burst of events
// for one Node costs one Set), and two that no Node name can collide with
// (names are DNS subdomains, without ':').
const (
	keyNodePrefix = "node/"
	keyRebuild    = ":rebuild"
	keyPublish    = ":publish"
)

// defaultRebuild is KubeSource.Rebuild's default.
const defaultRebuild = 10 * time.Minute

// KubeSource turns the cluster's Node objects into desired state and
// publishes this node's public key and endpoint on its own Node. It follows
// the shape of k8s.io/sample-controller: one shared informer for Nodes, a
// rate-limited work queue, one worker.
//
// It never calls update before the informer cache has synced (an empty
// cache would read as "no peers" and prune every tunnel), and it never
// writes to any Node but its own.
type KubeSource struct {
	Client kubernetes.Interface
	// Nodes lists and watches Nodes for the informer; nil means
	// Client's. NewNodeClient's decodes them slim straight from protobuf.
	Nodes typedcorev1.NodeInterface
	// Self is this node's name.
	Self string
	// SelfKey is this agent's public key; zero publishes nothing.
	SelfKey wgtun.Key
	// ListenPort is this agent's WireGuard port, published in its endpoint.
	ListenPort uint16
	// PQPort is this agent's post-quantum key-exchange port, published as
	// AnnotationPQPort; 0: post-quantum off (the annotation is removed).
	PQPort uint16
	// DefaultPort is assumed for peers that publish no endpoint (see
	// Input.DefaultPort); 0 means ListenPort.
	DefaultPort uint16
	// Resync is the informer resync period; 0 disables resync (events and
	// the engine's own kernel resync are enough).
	Resync time.Duration
	// Strict fences rejected Nodes' pod CIDRs (State.Fenced), for the
	// engine's strict mode to drop their traffic.
	Strict bool
	// Rebuild is how often the whole state is rebuilt from the cache with
	// Build and compared with the one the Node events led to (a difference
	// is logged and replaces it); 0 means 10 minutes, negative never.
	Rebuild time.Duration
	// RetryBase and RetryMax bound the exponential backoff of a failed
	// publication; 0 means 200ms and 5m.
	RetryBase, RetryMax time.Duration
	Log                 *zap.Logger

	// reportEvery makes this agent record the Event of every rejection,
	// not only those it is a reporter of: for tests of one agent.
	reportEvery bool
	// tombstoneTTL replaces TombstoneTTL when set: for tests.
	tombstoneTTL time.Duration
}

// kubeRun is the state of one Run call; only the worker goroutine touches
// the fields below the line.
type kubeRun struct {
	s        *KubeSource
	log      *zap.Logger
	client   kubernetes.Interface
	lister   corelisters.NodeLister
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	sink     Sink

	tracker  *Tracker
	started  bool
	rejected map[string]rejectionSeen // node name -> last recorded rejection
	// patchedRV is the resourceVersion of our own Node as it was when we
	// last patched it: while the cache still shows that version our patch
	// has not come back through the watch yet, and patching again would
	// only duplicate it.
	patchedRV string
}

type rejectionSeen struct {
	uid    types.UID
	reason string
}

// Run watches Nodes until ctx ends, giving sink the whole state once the
// cache has synced and then every change, and keeps this node's key and
// endpoint published. It returns nil when
// ctx ends and an error only for a configuration it cannot run with. When
// Run returns, its informer, work queue, worker and event broadcaster have
// stopped.
func (s *KubeSource) Run(ctx context.Context, sink Sink) error {
	if s.Client == nil {
		return errors.New("kube source: no client")
	}
	if s.Self == "" {
		return errors.New("kube source: no node name")
	}
	log := s.Log
	if log == nil {
		log = zap.NewNop()
	}
	if s.SelfKey.IsZero() {
		log.Warn("no public key given; this node's key and endpoint will not be published")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// No context for the broadcaster: it must outlive the worker's last
	// Event, and is shut down explicitly below.
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.Client.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: EventComponent, Host: s.Self})

	base, maxDelay := s.RetryBase, s.RetryMax
	if base <= 0 {
		base = 200 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 5 * time.Minute
	}
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(
		// Only publication fails; per-item backoff is all the limiting needed.
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](base, maxDelay),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "crosswire-nodes"},
	)

	factory := informers.NewSharedInformerFactoryWithOptions(s.Client, s.Resync, informers.WithTransform(slimTransform))
	// Registered first, so the factory's Node informer (with the factory's
	// transform) is the one that rides out API outages without client-go's
	// long reflector backoff.
	factory.InformerFor(&corev1.Node{}, newNodeInformer(log, s.Nodes))
	nodes := factory.Core().V1().Nodes()
	informer := nodes.Informer()

	var worker sync.WaitGroup
	// Stop in dependency order: cancel (stops the informer and any patch in
	// flight), shut the queue down (the worker finishes its item and exits;
	// late informer events are dropped), wait for the informer and the
	// worker, and only then stop the broadcaster that the worker records to.
	defer func() {
		cancel()
		queue.ShutDown()
		factory.Shutdown()
		worker.Wait()
		broadcaster.Shutdown()
	}()

	if err := informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		log.Warn("list/watch of Nodes failed; retrying", zap.Error(err))
	}); err != nil {
		return fmt.Errorf("kube source: %w", err)
	}
	self := s.Self
	enqueue := func(obj any) {
		name, ok := nodeName(obj)
		if !ok {
			return
		}
		queue.Add(keyNodePrefix + name)
		if name == self {
			queue.Add(keyPublish)
		}
	}
	reg, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			o, n := nodeOf(oldObj), nodeOf(newObj)
			if o != nil && n != nil && sameForCrosswire(o, n) {
				return // a resync, or a heartbeat: nothing crosswire reads changed
			}
			enqueue(newObj)
		},
		DeleteFunc: enqueue,
	})
	if err != nil {
		return fmt.Errorf("kube source: %w", err)
	}

	factory.Start(ctx.Done())
	log.Info("waiting for the Node cache to sync")
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced, reg.HasSynced) {
		// Only a cancelled context ends the wait unsynced.
		return nil
	}
	log.Info("Node cache synced")

	def := s.DefaultPort
	if def == 0 {
		def = s.ListenPort
	}
	r := &kubeRun{
		s: s, log: log, client: s.Client, lister: nodes.Lister(), queue: queue,
		recorder: recorder, sink: sink, rejected: map[string]rejectionSeen{},
		tracker: NewTracker(s.Self, s.SelfKey, def, s.Strict),
	}
	if s.tombstoneTTL > 0 {
		r.tracker.ttl = s.tombstoneTTL
	}
	// The first rebuild runs before any Node key (work); an empty cluster
	// produces no add events, so publish anyway.
	queue.Add(keyPublish)
	worker.Go(func() { r.work(ctx) })
	<-ctx.Done()
	return nil
}

// nodeName is the name of the Node an event is about; a tombstone names it
// even when it lost the object.
func nodeName(obj any) (string, bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return d.Key, d.Key != ""
	}
	if n := nodeOf(obj); n != nil {
		return n.Name, true
	}
	return "", false
}

func nodeOf(obj any) *corev1.Node {
	switch o := obj.(type) {
	case *corev1.Node:
		return o
	case cache.DeletedFinalStateUnknown:
		n, _ := o.Obj.(*corev1.Node)
		return n
	}
	return nil
}

func (r *kubeRun) work(ctx context.Context) {
	r.rebuild(ctx)
	for {
		key, shutdown := r.queue.Get()
		if shutdown {
			return
		}
		var err error
		switch {
		case key == keyRebuild:
			r.rebuild(ctx)
		case key == keyPublish:
			err = r.publish(ctx)
		case strings.HasPrefix(key, keyNodePrefix):
			r.set(ctx, strings.TrimPrefix(key, keyNodePrefix))
		}
		switch {
		case err == nil:
			r.queue.Forget(key)
		case ctx.Err() != nil:
			// Shutting down: the error is the cancellation.
		default:
			r.log.Warn("publishing key and endpoint failed; will retry", zap.Error(err),
				zap.Int("retries", r.queue.NumRequeues(key)))
			r.queue.AddRateLimited(key)
		}
		r.queue.Done(key)
	}
}

// set brings one Node's change (or removal) into the state, in time
// proportional to the Nodes it could conflict with, and passes the
// difference on.
func (r *kubeRun) set(ctx context.Context, name string) {
	n, err := r.lister.Get(name)
	switch {
	case apierrors.IsNotFound(err):
		n = nil
	case err != nil: // a cache lister cannot fail otherwise; keep the state
		r.log.Error("reading a Node from the cache", zap.String("node", name), zap.Error(err))
		return
	}
	c := r.tracker.Set(name, n)
	r.reportChanges(c.Rejections)
	if c.Empty() || ctx.Err() != nil {
		return
	}
	if c.LocalChanged && !c.SelfFound {
		warnSelfMissing(r.log, r.s.Self, c.Local)
	}
	r.log.Debug("desired state changed", zap.String("node", name), zap.Int("upserted", len(c.Upsert)),
		zap.Int("removed", len(c.Remove)), zap.Bool("local_changed", c.LocalChanged))
	r.sink.Apply(c)
}

// rebuild computes the whole state from the cache with Build, the
// reference the changes are checked against, and hands it over when it
// differs from what the changes led to (or at the start).
func (r *kubeRun) rebuild(ctx context.Context) {
	defer r.scheduleRebuild()
	nodes, err := r.lister.List(labels.Everything())
	if err != nil { // a cache lister cannot fail; keep the last state if it does
		r.log.Error("listing Nodes from the cache", zap.Error(err))
		return
	}
	var prev State
	if r.started {
		// Tombstones expire here, as a change of their own: the rebuild
		// below then compares like with like.
		if c := r.tracker.Expire(); !c.Empty() && ctx.Err() == nil {
			r.log.Info("tombstones of deleted Nodes expired", zap.Int("unfenced", len(c.Unfence)),
				zap.Bool("local_changed", c.LocalChanged))
			r.sink.Apply(c)
		}
		prev = r.tracker.State()
	}
	st := r.tracker.Reset(nodes)
	r.reportRejections(st.Rejected)
	if r.started && prev.Equal(st) {
		return
	}
	if r.started {
		r.log.Warn("the state the Node events led to differs from a full rebuild; replacing it",
			zap.Int("peers", len(st.Peers)), zap.Int("peers_before", len(prev.Peers)))
	}
	if !st.SelfFound {
		warnSelfMissing(r.log, r.s.Self, st.Local)
	}
	r.log.Info("desired state built", zap.Int("peers", len(st.Peers)), zap.Int("rejected", len(st.Rejected)),
		zap.Int("local_cidrs", len(st.Local)))
	r.started = true
	if ctx.Err() != nil {
		return // shutting down: the caller no longer wants states
	}
	r.sink.Replace(st)
}

// warnSelfMissing says that this node's own Node is missing or rejected,
// and what its local pod CIDRs are then: none, or those its deleted Node
// last held (its tombstone).
func warnSelfMissing(log *zap.Logger, self string, local []netip.Prefix) {
	if len(local) == 0 {
		log.Warn("this node's Node object is missing or rejected; no local pod CIDRs", zap.String("self", self))
		return
	}
	log.Warn("this node's Node object is missing; keeping the pod CIDRs it last held until it is back or its tombstone expires",
		zap.String("self", self), zap.Stringers("local_cidrs", local))
}

func (r *kubeRun) scheduleRebuild() {
	d := r.s.Rebuild
	if d == 0 {
		d = defaultRebuild
	}
	if d > 0 {
		r.queue.AddAfter(keyRebuild, d)
	}
}

// reportRejections reports, from a whole list of rejections, those that
// differ from the last ones reported.
func (r *kubeRun) reportRejections(rejected []Rejection) {
	reasons := map[string]string{}
	for _, rj := range rejected {
		if prev, ok := reasons[rj.Node]; ok {
			reasons[rj.Node] = prev + "; " + rj.Reason
			continue
		}
		reasons[rj.Node] = rj.Reason
	}
	for name := range r.rejected {
		if _, still := reasons[name]; !still {
			reasons[name] = ""
		}
	}
	r.reportChanges(reasons)
}

// reportChanges logs, and records an Event for, every rejection whose
// reason (or Node object) differs from the last one reported for that
// node; "" means the node is no longer rejected.
func (r *kubeRun) reportChanges(reasons map[string]string) {
	order := make([]string, 0, len(reasons))
	for name := range reasons {
		order = append(order, name)
	}
	slices.Sort(order)
	for _, name := range order {
		reason := reasons[name]
		if reason == "" {
			if _, was := r.rejected[name]; was {
				delete(r.rejected, name)
				if r.tracker.has(name) {
					r.log.Info("node no longer rejected", zap.String("peer", name))
				}
			}
			continue
		}
		now := rejectionSeen{uid: r.tracker.uid(name), reason: reason}
		if r.rejected[name] == now {
			continue
		}
		r.rejected[name] = now
		r.log.Warn("node rejected", zap.String("peer", name), zap.String("reason", reason))
		if r.s.reportEvery || r.tracker.reporters(name, r.s.Self) {
			ref := &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: name, UID: now.uid}
			r.recorder.Event(ref, corev1.EventTypeWarning, ReasonNodeRejected, reason)
		}
	}
}

// publish makes this node's own Node carry its public key and endpoint.
func (r *kubeRun) publish(ctx context.Context) error {
	if r.s.SelfKey.IsZero() {
		return nil // nothing to publish; logged at start
	}
	n, err := r.lister.Get(r.s.Self)
	if apierrors.IsNotFound(err) {
		r.log.Warn("this node's Node object does not exist; cannot publish the key yet", zap.String("self", r.s.Self))
		return nil // its add event will bring us back
	}
	if err != nil {
		return err
	}
	want, epErr := r.s.wantAnnotations(n)
	if epErr != nil {
		r.log.Warn("endpoint override of this node is unusable; publishing the InternalIP instead", zap.Error(epErr))
	}
	patch := map[string]any{}
	for k, v := range want {
		cur, ok := n.Annotations[k]
		switch {
		case v == "" && ok:
			patch[k] = nil // remove a stale endpoint
		case v != "" && cur != v:
			patch[k] = v
		}
	}
	if len(patch) == 0 {
		return nil
	}
	if n.ResourceVersion != "" && n.ResourceVersion == r.patchedRV {
		return nil // our last patch has not reached the cache yet
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": patch}})
	if err != nil {
		return err
	}
	if _, err := r.client.CoreV1().Nodes().Patch(ctx, r.s.Self, types.MergePatchType, body, metav1.PatchOptions{FieldManager: EventComponent}); err != nil {
		return fmt.Errorf("patch Node %s: %w", r.s.Self, err)
	}
	r.patchedRV = n.ResourceVersion
	msg := fmt.Sprintf("published public key %s", want[AnnotationPublicKey])
	if ep := want[AnnotationEndpoint]; ep != "" {
		msg += " and endpoint " + ep
	} else {
		msg += "; no endpoint (no override and no InternalIP)"
	}
	r.log.Info(msg, zap.String("self", r.s.Self))
	r.recorder.Event(&corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: n.Name, UID: n.UID},
		corev1.EventTypeNormal, ReasonKeyPublished, msg)
	return nil
}

// wantAnnotations returns the values this node's annotations should have;
// an empty endpoint means the annotation should be absent. The error is
// about an unusable override only; the InternalIP is used instead.
func (s *KubeSource) wantAnnotations(n *corev1.Node) (map[string]string, error) {
	ep, err := SelfEndpoint(n, s.ListenPort)
	want := map[string]string{AnnotationPublicKey: s.SelfKey.String(), AnnotationEndpoint: "", AnnotationPQPort: ""}
	if ep.IsValid() {
		want[AnnotationEndpoint] = ep.String()
	}
	if s.PQPort != 0 {
		want[AnnotationPQPort] = strconv.Itoa(int(s.PQPort))
	}
	return want, err
}

// SelfEndpoint is the endpoint a node publishes for itself: its
// endpoint-override annotation when set (an ip:port, or a bare address that
// takes port), else its first InternalIP with port. It is invalid when the
// node has neither. An unusable override is reported and skipped.
func SelfEndpoint(n *corev1.Node, port uint16) (netip.AddrPort, error) {
	var overrideErr error
	if s := strings.TrimSpace(n.Annotations[AnnotationEndpointOverride]); s != "" {
		ep, err := parseOverride(s, port)
		if err == nil {
			return ep, nil
		}
		overrideErr = fmt.Errorf("annotation %s: %w", AnnotationEndpointOverride, err)
	}
	ep, err := internalIPEndpoint(n, port)
	if err != nil {
		return netip.AddrPort{}, errors.Join(overrideErr, err)
	}
	return ep, overrideErr
}
