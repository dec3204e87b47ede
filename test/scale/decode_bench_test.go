package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/streaming"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"
	restwatch "k8s.io/client-go/rest/watch"

	"github.com/crosswire/crosswire/controller"
)

// Wire formats the agent's Node watch can ask for.
const (
	mediaJSON     = runtime.ContentTypeJSON
	mediaProtobuf = runtime.ContentTypeProtobuf
)

// storedNode is fake node i as the API server holds it after createFake
// and a heartbeat: metadata the server sets, every writer's fields and
// the managedFields entries those writes leave (one Update entry per
// manager and subresource, as the server records them).
func storedNode(t testing.TB, i int) *corev1.Node {
	t.Helper()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	n := shapedNode(i)
	n.UID = types.UID(fmt.Sprintf("0c6d5e62-1f0b-4a8e-9d51-%012d", i))
	n.ResourceVersion = "48213377"
	n.CreationTimestamp = metav1.NewTime(now.Add(-72 * time.Hour))
	cidr := fakeCIDR(i).String()
	n.Annotations["node.alpha.kubernetes.io/ttl"] = "0"
	n.Spec.PodCIDR, n.Spec.PodCIDRs = cidr, []string{cidr}
	kubeletStatus(n, i, now)
	orig, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []map[string]any{npdPatch(now, false), routePatch(now)} {
		orig = applyPatch(t, orig, p)
	}
	*n = corev1.Node{}
	if err := json.Unmarshal(orig, n); err != nil {
		t.Fatal(err)
	}
	n.Annotations[controller.AnnotationPublicKey] = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28="
	n.Annotations[controller.AnnotationEndpoint] = fakeIP(i) + ":51820"

	var kubeletAnn, kcmAnn, cwAnn []string
	for k := range kubeletAnnotations(i) {
		kubeletAnn = append(kubeletAnn, k)
	}
	kcmAnn = []string{"node.alpha.kubernetes.io/ttl"}
	cwAnn = []string{controller.AnnotationPublicKey, controller.AnnotationEndpoint}
	var labels []string
	for k := range n.Labels {
		labels = append(labels, k)
	}
	var kubeletConds, npdConds []string
	for _, c := range kubeletConditionTypes {
		kubeletConds = append(kubeletConds, string(c))
	}
	for _, c := range npdConditionTypes {
		npdConds = append(npdConds, c.typ)
	}
	condFields := []string{"lastHeartbeatTime", "lastTransitionTime", "message", "reason", "status", "type"}
	entry := func(manager, sub string, fields map[string]any) metav1.ManagedFieldsEntry {
		raw, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		ts := metav1.NewTime(now)
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
			Time: &ts, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(string(raw)), Subresource: sub}
	}
	kubeletMeta := map[string]any{"f:metadata": map[string]any{
		"f:annotations": fieldSet(kubeletAnn), "f:labels": fieldSet(labels)}}
	if len(n.Spec.Taints) > 0 {
		kubeletMeta["f:spec"] = map[string]any{"f:providerID": map[string]any{}, "f:taints": map[string]any{}}
	} else {
		kubeletMeta["f:spec"] = map[string]any{"f:providerID": map[string]any{}}
	}
	n.ManagedFields = []metav1.ManagedFieldsEntry{
		entry(managerKubelet, "", kubeletMeta),
		entry(managerKCM, "", map[string]any{
			"f:metadata": map[string]any{"f:annotations": fieldSet(kcmAnn)},
			"f:spec":     map[string]any{"f:podCIDR": map[string]any{}, "f:podCIDRs": map[string]any{".": map[string]any{}, `v:"` + cidr + `"`: map[string]any{}}},
		}),
		entry(managerCrosswire, "", map[string]any{"f:metadata": map[string]any{"f:annotations": fieldSet(cwAnn)}}),
		entry(managerKubelet, "status", map[string]any{"f:status": map[string]any{
			"f:conditions":      keyedItems("type", kubeletConds, condFields),
			"f:addresses":       keyedItems("type", []string{"InternalIP", "InternalDNS", "Hostname"}, []string{"address", "type"}),
			"f:allocatable":     fieldSet([]string{"cpu", "ephemeral-storage", "hugepages-1Gi", "hugepages-2Mi", "memory", "pods"}),
			"f:capacity":        fieldSet([]string{"cpu", "ephemeral-storage", "hugepages-1Gi", "hugepages-2Mi", "memory", "pods"}),
			"f:daemonEndpoints": map[string]any{"f:kubeletEndpoint": map[string]any{"f:Port": map[string]any{}}},
			"f:images":          map[string]any{},
			"f:nodeInfo": fieldSet([]string{"architecture", "bootID", "containerRuntimeVersion", "kernelVersion",
				"kubeProxyVersion", "kubeletVersion", "machineID", "operatingSystem", "osImage", "systemUUID"}),
		}}),
		entry(managerNPD, "status", map[string]any{"f:status": map[string]any{"f:conditions": keyedItems("type", npdConds, condFields)}}),
		entry(managerCloud, "status", map[string]any{"f:status": map[string]any{
			"f:conditions": keyedItems("type", []string{string(corev1.NodeNetworkUnavailable)}, condFields)}}),
	}
	return n
}

// fieldSet is the FieldsV1 of a map or struct whose fields names are
// owned.
func fieldSet(names []string) map[string]any {
	m := map[string]any{".": map[string]any{}}
	for _, k := range names {
		m["f:"+k] = map[string]any{}
	}
	return m
}

// keyedItems is the FieldsV1 of the items of a list keyed by key (as
// conditions are by type), each with fields owned.
func keyedItems(key string, values, fields []string) map[string]any {
	m := map[string]any{}
	for _, v := range values {
		m[fmt.Sprintf(`k:{"%s":"%s"}`, key, v)] = fieldSet(fields)
	}
	return m
}

// watchFrames is one MODIFIED watch event of n as the API server writes it
// in mediaType: the object encoded for its group version inside a
// metav1.WatchEvent, framed for the stream.
func watchFrames(t testing.TB, mediaType string, n *corev1.Node) []byte {
	t.Helper()
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), mediaType)
	if !ok || info.StreamSerializer == nil {
		t.Fatalf("no stream serializer for %s", mediaType)
	}
	obj, err := runtime.Encode(scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion), n)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	fw := info.StreamSerializer.Framer.NewFrameWriter(&buf)
	ev := &metav1.WatchEvent{Type: string(watch.Modified), Object: runtime.RawExtension{Raw: obj}}
	if err := info.StreamSerializer.Encode(ev, fw); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// loopReader reads b over and over.
type loopReader struct {
	b   []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

func (r *loopReader) Close() error { return nil }

// watchDecoder decodes a watch stream of mediaType as client-go's REST
// client does (rest.Request.newStreamWatcher), with the agent's Node
// client's codecs when slim.
func watchDecoder(t testing.TB, mediaType string, slim bool, body io.ReadCloser) *restwatch.Decoder {
	t.Helper()
	gv := corev1.SchemeGroupVersion
	ns := scheme.Codecs.WithoutConversion()
	if slim {
		ns = controller.SlimNodeSerializer(ns)
	}
	neg := runtime.NewClientNegotiator(ns, gv)
	mt, params, err := mime.ParseMediaType(mediaType)
	if err != nil {
		t.Fatal(err)
	}
	objDec, streamSer, framer, err := neg.StreamDecoder(mt, params)
	if err != nil {
		t.Fatal(err)
	}
	return restwatch.NewDecoder(streaming.NewDecoder(framer.NewFrameReader(body), streamSer), objDec)
}

// The watch event the benchmark decodes is real-shaped: its size and
// parts are a cloud provider's Node's, and both wire formats decode it to
// the same Node.
func TestWatchEventShape(t *testing.T) {
	n := storedNode(t, 1234)
	js := watchFrames(t, mediaJSON, n)
	pb := watchFrames(t, mediaProtobuf, n)
	if len(js) < 12_000 || len(js) > 25_000 {
		t.Errorf("JSON watch event is %d bytes, want 12-25 KB", len(js))
	}
	if len(n.ManagedFields) != 6 || len(n.Status.Conditions) != 12 || len(n.Status.Images) != imagesPerNode {
		t.Errorf("%d managedFields entries, %d conditions, %d images; want 6, 12, %d",
			len(n.ManagedFields), len(n.Status.Conditions), len(n.Status.Images), imagesPerNode)
	}
	if testing.Verbose() {
		t.Logf("watch event: %d bytes of JSON, %d of protobuf", len(js), len(pb))
	}
	for _, mt := range []string{mediaJSON, mediaProtobuf} {
		b := watchFrames(t, mt, n)
		typ, obj, err := watchDecoder(t, mt, false, io.NopCloser(bytes.NewReader(b))).Decode()
		if err != nil {
			t.Fatalf("%s: %v", mt, err)
		}
		got, ok := obj.(*corev1.Node)
		if typ != watch.Modified || !ok {
			t.Fatalf("%s: %s %T, want MODIFIED *v1.Node", mt, typ, obj)
		}
		got.TypeMeta = n.TypeMeta
		if !equalNodes(got, n) {
			t.Errorf("%s: decoded Node differs from the encoded one", mt)
		}
	}
	b := watchFrames(t, mediaProtobuf, n)
	typ, obj, err := watchDecoder(t, mediaProtobuf, true, io.NopCloser(bytes.NewReader(b))).Decode()
	if err != nil {
		t.Fatalf("slim: %v", err)
	}
	got, ok := obj.(*corev1.Node)
	if typ != watch.Modified || !ok {
		t.Fatalf("slim: %s %T, want MODIFIED *v1.Node", typ, obj)
	}
	want := controller.SlimNode(n)
	want.TypeMeta = got.TypeMeta
	if !equalNodes(got, want) || len(got.Annotations) != 2 || len(got.Status.Addresses) != 1 {
		t.Errorf("slim decode differs from SlimNode:\n got %+v\nwant %+v", got, want)
	}
}

func equalNodes(a, b *corev1.Node) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// BenchmarkWatchDecode is what one Node watch event costs the agent before
// its handlers run: client-go's decode of the frame and the object, then
// the informer's transform (controller.SlimNode). A heartbeat is exactly
// this and nothing more. The sub-benchmarks run in one process, so their
// ratio holds on a loaded machine where the absolute figures do not.
//
// The -gzip variants are the events of a watch-list stream (the one the
// informer syncs with, sendInitialEvents): the API server compresses it
// when the client accepts gzip, as Go's HTTP client does, flushing each
// event as a gzip member of its own (perFlushGzipWriter in k8s.io/apiserver).
// The -slim variants decode as the agent's Node client does
// (controller.NewNodeClient): only what crosswire reads.
func BenchmarkWatchDecode(b *testing.B) {
	n := storedNode(b, 1234)
	for _, c := range []struct {
		mt         string
		gzip, slim bool
	}{
		{mediaJSON, false, false}, {mediaProtobuf, false, false}, {mediaJSON, true, false}, {mediaProtobuf, true, false},
		{mediaProtobuf, false, true}, {mediaProtobuf, true, true},
	} {
		name := strings.TrimPrefix(c.mt[strings.LastIndex(c.mt, "/")+1:], "vnd.kubernetes.")
		if c.gzip {
			name += "-gzip"
		}
		if c.slim {
			name += "-slim"
		}
		mt := c.mt
		b.Run(name, func(b *testing.B) {
			frame := watchFrames(b, mt, n)
			var body io.ReadCloser = &loopReader{b: frame}
			wire := len(frame)
			if c.gzip {
				var z bytes.Buffer
				zw := gzip.NewWriter(&z)
				if _, err := zw.Write(frame); err != nil {
					b.Fatal(err)
				}
				if err := zw.Close(); err != nil {
					b.Fatal(err)
				}
				zr, err := gzip.NewReader(&loopReader{b: z.Bytes()})
				if err != nil {
					b.Fatal(err)
				}
				body, wire = zr, z.Len()
			}
			dec := watchDecoder(b, mt, c.slim, body)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				_, obj, err := dec.Decode()
				if err != nil {
					b.Fatal(err)
				}
				if controller.SlimNode(obj.(*corev1.Node)).Name != n.Name {
					b.Fatal("wrong node")
				}
			}
			b.ReportMetric(float64(wire), "wire-B/event")
		})
	}
}
