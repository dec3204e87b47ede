package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

var nodesGR = schema.GroupResource{Resource: "nodes"}

// refused is what the client returns while nothing listens on the port.
var refused = &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/api/v1/nodes", Err: &net.OpError{
	Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED),
}}

func TestIsOutage(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{fmt.Errorf("list: %w", refused), true},
		{&url.Error{Op: "Get", URL: "https://x", Err: errors.New("http2: client connection lost")}, true},
		{apierrors.NewServiceUnavailable("apiserver is shutting down"), true},
		{apierrors.NewTooManyRequests("not fully initialized", 1), true},
		{apierrors.NewForbidden(nodesGR, "", errors.New("RBAC")), false},
		{apierrors.NewResourceExpired("too old resource version"), false},
		{apierrors.NewResourceExpired("expired"), false},
		{apierrors.NewInternalError(errors.New("etcd")), false},
		{apierrors.NewBadRequest("watch-list unsupported"), false},
		{context.Canceled, false},
		{&url.Error{Op: "Get", URL: "https://x", Err: context.Canceled}, false},
		{context.DeadlineExceeded, false},
		{nil, false},
	} {
		if got := isOutage(c.err); got != c.want {
			t.Errorf("isOutage(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// testRetry is an outageRetry on a fake clock: waits return at once and
// are recorded, so the schedule is checked without sleeping.
func testRetry(t *testing.T) (*outageRetry, *observer.ObservedLogs, *[]time.Duration) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	r := newOutageRetry(zap.New(core), "Nodes")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var waits []time.Duration
	r.now = func() time.Time { return now }
	r.after = func(d time.Duration) <-chan time.Time {
		waits = append(waits, d)
		now = now.Add(d)
		c := make(chan time.Time, 1)
		c <- now
		return c
	}
	return r, logs, &waits
}

// A server down for 2 minutes: the call is retried, never more than a
// second apart, until it answers; the reflector sees only the success.
// The outage is logged when it starts, every 30 s, and when it ends.
func TestRetryOutageRidesOutAnOutage(t *testing.T) {
	r, logs, waits := testRetry(t)
	var calls int
	var down time.Duration
	got, err := retryOutage(context.Background(), r, func(context.Context) (string, error) {
		calls++
		if down < 2*time.Minute {
			if len(*waits) > 0 {
				down += (*waits)[len(*waits)-1]
			}
			return "", refused
		}
		return "nodes", nil
	})
	if err != nil || got != "nodes" {
		t.Fatalf("retryOutage = %q, %v; want the successful result", got, err)
	}
	if calls != len(*waits)+1 {
		t.Fatalf("%d calls for %d waits", calls, len(*waits))
	}
	for i, d := range *waits {
		if d <= 0 || d > outageRetryMax {
			t.Fatalf("wait %d is %v; want within (0, %v]", i, d, outageRetryMax)
		}
	}
	if (*waits)[0] > outageRetryMin {
		t.Errorf("first wait %v, want at most %v", (*waits)[0], outageRetryMin)
	}
	// 2 minutes at about a second: ~120 attempts, not ~8 (client-go's
	// backoff) and not thousands.
	if calls < 100 || calls > 200 {
		t.Errorf("%d attempts over a 2 minute outage; want one every 0.75-1 s", calls)
	}
	warn := logs.FilterLevelExact(zapcore.WarnLevel).Len()
	if warn < 4 || warn > 6 {
		t.Errorf("%d warnings over a 2 minute outage; want one at the start and one every 30 s:\n%v", warn, logs.All())
	}
	resumed := logs.FilterMessageSnippet("resumed").All()
	if len(resumed) != 1 || resumed[0].ContextMap()["attempts"] != int64(calls-1) {
		t.Errorf("recovery log %v; want one, with %d attempts", resumed, calls-1)
	}

	// The next outage starts a new log and a new schedule.
	*waits = nil
	calls = 0
	if _, err := retryOutage(context.Background(), r, func(context.Context) (int, error) {
		if calls++; calls < 3 {
			return 0, apierrors.NewServiceUnavailable("starting")
		}
		return 1, nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(*waits) != 2 || (*waits)[0] > outageRetryMin {
		t.Errorf("second outage waits %v; want 2, starting at most %v", *waits, outageRetryMin)
	}
	if n := len(logs.FilterMessageSnippet("resumed").All()); n != 2 {
		t.Errorf("%d recovery logs after two outages, want 2", n)
	}
}

// Errors the reflector acts on (410 Gone relists, 403 is reported) are
// returned at once, unretried and unlogged.
func TestRetryOutagePassesOtherErrors(t *testing.T) {
	for _, want := range []error{
		apierrors.NewResourceExpired("too old resource version"),
		apierrors.NewForbidden(nodesGR, "", errors.New("RBAC")),
	} {
		r, logs, waits := testRetry(t)
		calls := 0
		_, err := retryOutage(context.Background(), r, func(context.Context) (int, error) {
			calls++
			return 0, want
		})
		if err != want || calls != 1 || len(*waits) != 0 || logs.Len() != 0 {
			t.Errorf("%v: got %v after %d calls, %d waits, %d logs; want it returned at once", want, err, calls, len(*waits), logs.Len())
		}
	}
}

// A cancelled context ends the retry promptly with the last error, on the
// real clock.
func TestRetryOutageStopsWithContext(t *testing.T) {
	r := newOutageRetry(zap.NewNop(), "Nodes")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := retryOutage(ctx, r, func(context.Context) (int, error) { return 0, refused })
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("retryOutage after cancel = %v, want the last connection error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("retryOutage still running 10 s after its context ended")
	}
}

// The factory hands out the registered informer: its lister, Start and
// Shutdown are the ones KubeSource uses, and it lists and watches Nodes.
func TestNodeInformerRegisteredInFactory(t *testing.T) {
	client := fake.NewClientset(kubeNode("node2"))
	factory := informers.NewSharedInformerFactory(client, 0)
	mine := factory.InformerFor(&corev1.Node{}, newNodeInformer(zap.NewNop(), nil))
	nodes := factory.Core().V1().Nodes()
	if nodes.Informer().GetIndexer() != mine.GetIndexer() {
		t.Fatal("the factory's Node informer is not the outage-tolerant one")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		factory.Shutdown()
	}()
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	if _, err := nodes.Lister().Get("node2"); err != nil {
		t.Fatalf("listed Node not in the cache: %v", err)
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, kubeNode("node3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := nodes.Lister().Get("node3"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("watched Node never reached the cache")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bookmark is a watch bookmark at rv; end marks it as the end of a
// watch-list stream's initial events.
func bookmark(rv string, end bool) watch.Event {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv}}
	if end {
		n.Annotations = map[string]string{metav1.InitialEventsAnnotationKey: "true"}
	}
	return watch.Event{Type: watch.Bookmark, Object: n}
}

func nodeAt(name, rv string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: rv}}
}

func nextEvent(t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("result channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return watch.Event{}
}

func eventRV(ev watch.Event) string {
	m, _ := meta.Accessor(ev.Object)
	return string(ev.Type) + "@" + m.GetResourceVersion()
}

// A watch-list stream is read up to its initial-events-end bookmark and
// not a byte further; the watch continues from the bookmark's
// resourceVersion on a plain watch, so the reflector sees every event
// once and in order.
func TestContinuePlainAfterInitialEvents(t *testing.T) {
	first, second := watch.NewRaceFreeFake(), watch.NewRaceFreeFake()
	opened := make(chan string, 1)
	w := continuePlain(context.Background(), first, func(_ context.Context, rv string) (watch.Interface, error) {
		opened <- rv
		return second, nil
	})
	defer w.Stop()
	first.Add(nodeAt("node2", "10"))
	first.Add(nodeAt("node3", "11"))
	first.Action(watch.Bookmark, bookmark("12", false).Object) // a progress bookmark: no switch
	first.Action(watch.Bookmark, bookmark("15", true).Object)
	first.Modify(nodeAt("node2", "16")) // sent after the bookmark: must not be read
	var got []string
	for range 4 {
		got = append(got, eventRV(nextEvent(t, w)))
	}
	if want := "ADDED@10 ADDED@11 BOOKMARK@12 BOOKMARK@15"; strings.Join(got, " ") != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	select {
	case rv := <-opened:
		if rv != "15" {
			t.Errorf("plain watch from %q, want the bookmark's 15", rv)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no plain watch opened")
	}
	if !first.IsStopped() {
		t.Error("the watch-list stream was not stopped")
	}
	second.Modify(nodeAt("node2", "16"))
	if got := eventRV(nextEvent(t, w)); got != "MODIFIED@16" {
		t.Errorf("after the switch: %s, want MODIFIED@16", got)
	}
	w.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for !second.IsStopped() {
		if time.Now().After(deadline) {
			t.Fatal("Stop did not stop the plain watch")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range w.ResultChan() {
	}
}

// A plain watch that cannot be opened ends the watch (the reflector
// re-watches as after any watch that ended); a stream that ends before its
// bookmark ends the watch too.
func TestContinuePlainEnds(t *testing.T) {
	first := watch.NewRaceFreeFake()
	w := continuePlain(context.Background(), first, func(context.Context, string) (watch.Interface, error) {
		return nil, apierrors.NewForbidden(nodesGR, "", errors.New("no"))
	})
	first.Action(watch.Bookmark, bookmark("15", true).Object)
	if ev := nextEvent(t, w); ev.Type != watch.Bookmark {
		t.Fatalf("got %s, want the bookmark", ev.Type)
	}
	waitClosed(t, w)

	first = watch.NewRaceFreeFake()
	w = continuePlain(context.Background(), first, func(context.Context, string) (watch.Interface, error) {
		t.Error("plain watch opened without a bookmark")
		return nil, errors.New("unexpected")
	})
	first.Add(nodeAt("node2", "10"))
	nextEvent(t, w)
	first.Stop()
	waitClosed(t, w)
}

func waitClosed(t *testing.T, w watch.Interface) {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if ok {
			t.Fatalf("event %s after the end", ev.Type)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("result channel not closed")
	}
}
