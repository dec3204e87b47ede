package controller

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Retry bounds of a list or watch call that cannot reach the API server.
// client-go's reflector backs off between failed attempts from 0.8 s
// doubling to 30 s with up to 2x jitter, so after a 30 s outage its watch
// resumed ~50 s late. Retrying the call itself at most every second keeps
// the reflector from ever seeing (and backing off on) a transient error,
// while a server that stays down gets one connection attempt a second.
const (
	outageRetryMin = 250 * time.Millisecond
	outageRetryMax = time.Second
	// outageLogEvery spaces the "still failing" warnings of one outage.
	outageLogEvery = 30 * time.Second
)

// newNodeInformer is an informers.NewInformerFunc for Nodes whose list and
// watch calls retry transient failures themselves (see outageRetry), made
// through nodes (nil: the factory's client). Hand it to the factory
// before anything asks it for the Node informer:
//
//	factory.InformerFor(&corev1.Node{}, newNodeInformer(log, nodes))
//
// so the factory's lister, transform, Start and Shutdown apply to it.
func newNodeInformer(log *zap.Logger, nodes corev1client.NodeInterface) func(kubernetes.Interface, time.Duration) cache.SharedIndexInformer {
	return func(client kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		if nodes == nil {
			nodes = client.CoreV1().Nodes()
		}
		return cache.NewSharedIndexInformerWithOptions(
			nodeListWatch(client, nodes, newOutageRetry(log, "Nodes")),
			&corev1.Node{},
			cache.SharedIndexInformerOptions{ResyncPeriod: resync, Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}},
		)
	}
}

// nodeListWatch lists and watches Nodes through nodes like client-go's
// generated informer does (including its watch-list capability, which
// client tells), retrying outages with r.
func nodeListWatch(client kubernetes.Interface, nodes corev1client.NodeInterface, r *outageRetry) cache.ListerWatcher {
	list := func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return retryOutage(ctx, r, func(ctx context.Context) (runtime.Object, error) { return nodes.List(ctx, opts) })
	}
	watchFn := func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		w, err := retryOutage(ctx, r, func(ctx context.Context) (watch.Interface, error) { return nodes.Watch(ctx, opts) })
		if err != nil || opts.SendInitialEvents == nil || !*opts.SendInitialEvents {
			return w, err
		}
		return continuePlain(ctx, w, func(ctx context.Context, rv string) (watch.Interface, error) {
			plain := metav1.ListOptions{
				LabelSelector: opts.LabelSelector, FieldSelector: opts.FieldSelector,
				ResourceVersion: rv, AllowWatchBookmarks: opts.AllowWatchBookmarks, TimeoutSeconds: opts.TimeoutSeconds,
			}
			return retryOutage(ctx, r, func(ctx context.Context) (watch.Interface, error) { return nodes.Watch(ctx, plain) })
		}), nil
	}
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc:  list,
		WatchFuncWithContext: watchFn,
	}, client)
}

// outageRetry retries list and watch calls that failed because the API
// server is unreachable or not serving yet, every min doubling to max (with
// a little jitter below it, so agents do not reconnect in lockstep), until
// one succeeds, fails otherwise, or its context ends. Other errors (403,
// 410 Gone, ...) go to the reflector unchanged: they carry meaning it acts
// on. One outage is logged once when it starts, every logEvery while it
// lasts, and once when it ends.
type outageRetry struct {
	log      *zap.Logger
	what     string
	min, max time.Duration
	logEvery time.Duration
	// after is time.After; tests replace it.
	after func(time.Duration) <-chan time.Time
	now   func() time.Time

	mu       sync.Mutex
	since    time.Time // start of the current outage; zero when none
	lastLog  time.Time
	attempts int // failed attempts in the current outage
}

func newOutageRetry(log *zap.Logger, what string) *outageRetry {
	if log == nil {
		log = zap.NewNop()
	}
	return &outageRetry{
		log: log, what: what, min: outageRetryMin, max: outageRetryMax, logEvery: outageLogEvery,
		after: time.After, now: time.Now,
	}
}

// retryOutage calls call until it succeeds or fails with an error that is
// not an outage; a cancelled ctx ends it with the last error.
func retryOutage[T any](ctx context.Context, r *outageRetry, call func(context.Context) (T, error)) (T, error) {
	delay := r.min
	for {
		v, err := call(ctx)
		if err == nil || ctx.Err() != nil || !isOutage(err) {
			if err == nil {
				r.recovered()
			}
			return v, err
		}
		r.failed(err)
		wait := delay - time.Duration(rand.Int64N(int64(delay)/4+1))
		select {
		case <-ctx.Done():
			return v, err
		case <-r.after(wait):
		}
		delay = min(2*delay, r.max)
	}
}

func (r *outageRetry) failed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.attempts++
	switch {
	case r.since.IsZero():
		r.since, r.lastLog = now, now
		r.log.Warn("API server unreachable; retrying list/watch of "+r.what+" every second at most",
			zap.Error(err))
	case now.Sub(r.lastLog) >= r.logEvery:
		r.lastLog = now
		r.log.Warn("API server still unreachable; retrying list/watch of "+r.what,
			zap.Duration("for", now.Sub(r.since).Round(time.Second)), zap.Int("attempts", r.attempts), zap.Error(err))
	}
}

func (r *outageRetry) recovered() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.since.IsZero() {
		return
	}
	r.log.Info("API server reachable again; list/watch of "+r.what+" resumed",
		zap.Duration("after", r.now().Sub(r.since).Round(time.Millisecond)), zap.Int("attempts", r.attempts))
	r.since, r.attempts = time.Time{}, 0
}

// isOutage tells whether err means the API server cannot answer right now:
// no HTTP response at all (refused, reset, timed out, TLS or DNS failure
// while it restarts), or 429/503 (starting up, shutting down, overloaded).
// Any other API status is an answer the reflector must handle itself, and
// a cancelled or expired context is the caller's.
func isOutage(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		switch status.Status().Code {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return true
		}
		return false
	}
	return true
}

// continuePlain is the watch-list stream first (a watch with
// sendInitialEvents) up to and including its initial-events-end bookmark,
// then a plain watch that open starts from that bookmark's resourceVersion,
// as one watch: the reflector syncs from the first and watches on with the
// second as it would have with the first.
//
// Why: the API server gzips a watch-list stream for a client that accepts
// gzip (Go's HTTP client does), which suits the initial events (a third of
// the bytes), but it also gzips every later event as a stream of its own,
// for as long as the stream lasts (5-10 minutes): a kubelet heartbeat then
// costs the agent a gzip header and Huffman tables besides the decode
// (twice the CPU of the decode alone, BenchmarkWatchDecode in test/scale)
// and costs the API server a compression per agent. A plain watch is never
// compressed. The plain watch resumes exactly after the bookmark: nothing
// the first stream sent after it is read.
//
// If the plain watch cannot be opened the result channel closes, and the
// reflector recovers as from any watch that ended.
func continuePlain(ctx context.Context, first watch.Interface, open func(context.Context, string) (watch.Interface, error)) watch.Interface {
	ctx, cancel := context.WithCancel(ctx)
	w := &plainAfterSync{cancel: cancel, result: make(chan watch.Event)}
	go w.run(ctx, first, open)
	return w
}

type plainAfterSync struct {
	cancel context.CancelFunc
	result chan watch.Event
}

func (w *plainAfterSync) Stop()                          { w.cancel() }
func (w *plainAfterSync) ResultChan() <-chan watch.Event { return w.result }

func (w *plainAfterSync) run(ctx context.Context, cur watch.Interface, open func(context.Context, string) (watch.Interface, error)) {
	defer close(w.result)
	defer func() { cur.Stop() }()
	synced := false
	for {
		var ev watch.Event
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ev, ok = <-cur.ResultChan():
			if !ok {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case w.result <- ev:
		}
		if synced || !isInitialEventsEnd(ev) {
			continue
		}
		synced = true
		m, err := meta.Accessor(ev.Object)
		if err != nil {
			return
		}
		cur.Stop()
		next, err := open(ctx, m.GetResourceVersion())
		if err != nil {
			cur = watch.NewEmptyWatch() // for the deferred Stop
			return
		}
		cur = next
	}
}

// isInitialEventsEnd tells whether ev is the bookmark that ends a watch-list
// stream's initial events.
func isInitialEventsEnd(ev watch.Event) bool {
	if ev.Type != watch.Bookmark {
		return false
	}
	m, err := meta.Accessor(ev.Object)
	return err == nil && m.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true"
}
