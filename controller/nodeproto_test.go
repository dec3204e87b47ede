package controller

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

// protoCodec encodes as the API server does and decodes as client-go does
// (standard) or as the agent's Node client does (slim).
type protoCodec struct {
	enc      runtime.Encoder
	std, slm runtime.Decoder
}

func newProtoCodec(t testing.TB) protoCodec {
	t.Helper()
	base := scheme.Codecs.WithoutConversion()
	info, ok := runtime.SerializerInfoForMediaType(base.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		t.Fatal("no protobuf serializer")
	}
	decoder := func(ns runtime.NegotiatedSerializer) runtime.Decoder {
		d, err := runtime.NewClientNegotiator(ns, corev1.SchemeGroupVersion).Decoder(runtime.ContentTypeProtobuf, nil)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	return protoCodec{
		enc: scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion),
		std: decoder(base),
		slm: decoder(SlimNodeSerializer(base)),
	}
}

func (c protoCodec) encode(t testing.TB, obj runtime.Object) []byte {
	t.Helper()
	b, err := runtime.Encode(c.enc, obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantSlim is what the slim decode must give for a Node the standard
// decode gave: SlimNode's fields, and a bookmark's end marker.
func wantSlim(std *corev1.Node) *corev1.Node {
	w := SlimNode(std)
	if v, ok := std.Annotations[metav1.InitialEventsAnnotationKey]; ok {
		if w.Annotations == nil {
			w.Annotations = map[string]string{}
		}
		w.Annotations[metav1.InitialEventsAnnotationKey] = v
	}
	return w
}

func slimDecodeCases() map[string]*corev1.Node {
	bookmark := &corev1.Node{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "4711",
		Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}}
	bare := mkNode("bare")
	bare.Annotations = nil
	twoIPs := realNode("two")
	twoIPs.Status.Addresses = append(twoIPs.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.9.9.9"})
	legacy := realNode("legacy")
	legacy.Spec.PodCIDRs = nil
	legacy.Spec.PodCIDR = "10.244.3.0/24"
	deleting := realNode("deleting")
	deleting.DeletionTimestamp = &metav1.Time{Time: t0.Add(3e9)}
	return map[string]*corev1.Node{
		"real": realNode("node7"), "bookmark": bookmark, "bare": bare, "two InternalIPs": twoIPs,
		"podCIDR only": legacy, "deleting": deleting,
	}
}

// TestSlimDecodeIsSlimNode: for Nodes as clusters write them, decoding
// slim from protobuf gives exactly SlimNode of the full decode.
func TestSlimDecodeIsSlimNode(t *testing.T) {
	c := newProtoCodec(t)
	for name, n := range slimDecodeCases() {
		t.Run(name, func(t *testing.T) {
			b := c.encode(t, n)
			full, err := runtime.Decode(c.std, b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := runtime.Decode(c.slm, b)
			if err != nil {
				t.Fatal(err)
			}
			want := wantSlim(full.(*corev1.Node))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("slim decode\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

// TestSlimDecodeInto: a typed client's Get or List decodes into the
// object it passes, replacing whatever was there.
func TestSlimDecodeInto(t *testing.T) {
	c := newProtoCodec(t)
	n := realNode("node7")
	into := realNode("stale")
	into.Annotations["crosswire.dev/stale"] = "x"
	out, _, err := c.slm.Decode(c.encode(t, n), nil, into)
	if err != nil || out != into {
		t.Fatalf("decode into: %v, returned %p want %p", err, out, into)
	}
	std, err := runtime.Decode(c.std, c.encode(t, n))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(into, SlimNode(std.(*corev1.Node))) {
		t.Fatalf("into holds %#v", into)
	}

	list := &corev1.NodeList{ListMeta: metav1.ListMeta{ResourceVersion: "99", Continue: "next"},
		Items: []corev1.Node{*realNode("a"), *mkNode("b"), *realNode("c")}}
	intoList := &corev1.NodeList{Items: []corev1.Node{*realNode("stale")}}
	stdList, err := runtime.Decode(c.std, c.encode(t, list))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = c.slm.Decode(c.encode(t, list), nil, intoList)
	if err != nil || out != intoList {
		t.Fatalf("decode list into: %v", err)
	}
	if intoList.ResourceVersion != "99" || intoList.Continue != "next" || len(intoList.Items) != 3 {
		t.Fatalf("list meta %+v, %d items", intoList.ListMeta, len(intoList.Items))
	}
	for i, n := range stdList.(*corev1.NodeList).Items {
		if want := SlimNode(&n); !reflect.DeepEqual(&intoList.Items[i], want) {
			t.Errorf("item %d\n got %#v\nwant %#v", i, &intoList.Items[i], want)
		}
	}
}

// TestSlimDecodeOthersAsBefore: what is not a v1 Node or NodeList (the
// Status of a failed watch, a Node into another type) decodes as
// client-go decodes it.
func TestSlimDecodeOthersAsBefore(t *testing.T) {
	c := newProtoCodec(t)
	st := &metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old resource version"}
	got, err := runtime.Decode(c.slm, c.encode(t, st))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := got.(*metav1.Status); !ok || s.Code != 410 || s.Reason != metav1.StatusReasonExpired {
		t.Fatalf("Status decoded as %#v", got)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"}}}
	got, err = runtime.Decode(c.slm, c.encode(t, pod))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := got.(*corev1.Pod); !ok || p.Labels["a"] != "b" {
		t.Fatalf("Pod decoded as %#v", got)
	}
}

// TestSlimDecodeRejectsDamage: every truncation of an encoded Node is an
// error or a Node, never a panic; cutting inside a field the slim decode
// reads is an error.
func TestSlimDecodeRejectsDamage(t *testing.T) {
	c := newProtoCodec(t)
	b := c.encode(t, realNode("node7"))
	_, _, raw, ok := protobufEnvelope(b)
	if !ok {
		t.Fatal("no envelope")
	}
	errs := 0
	for i := range len(raw) {
		if _, err := decodeSlimNode(raw[:i]); err != nil {
			errs++
			if !strings.Contains(err.Error(), "field") && !strings.Contains(err.Error(), ":") {
				t.Fatalf("cut at %d: unhelpful error %q", i, err)
			}
		}
	}
	// The metadata, spec and status messages enclose almost every byte.
	if errs < len(raw)*9/10 {
		t.Fatalf("%d of %d truncations were errors", errs, len(raw))
	}
	if _, err := runtime.Decode(c.slm, b[:len(b)/2]); err == nil {
		t.Fatal("a truncated object decoded")
	}
}

// FuzzSlimDecode: on any bytes the slim decode never panics, and
// wherever client-go's generated decode accepts a Node the slim decode
// accepts it too and agrees with SlimNode (except for protobuf groups,
// which Kubernetes never sends and the slim decode rejects).
func FuzzSlimDecode(f *testing.F) {
	for _, n := range slimDecodeCases() {
		b, err := n.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeSlimNode(b)
		var full corev1.Node
		if full.Unmarshal(b) != nil {
			return
		}
		if errors.Is(err, errGroup) {
			return
		}
		if err != nil {
			t.Fatalf("slim decode failed where the full one did not: %v", err)
		}
		if want := wantSlim(&full); !reflect.DeepEqual(got, want) {
			t.Fatalf("slim decode\n got %#v\nwant %#v", got, want)
		}
	})
}
