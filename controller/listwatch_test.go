package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
	mine := factory.InformerFor(&corev1.Node{}, newNodeInformer(zap.NewNop()))
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
