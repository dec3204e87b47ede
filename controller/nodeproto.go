package controller

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Field numbers in k8s.io/api/core/v1 and k8s.io/apimachinery meta/v1
// generated.proto of what crosswire reads; every other field is skipped
// without being decoded.
const (
	fieldNodeMetadata = 1
	fieldNodeSpec     = 2
	fieldNodeStatus   = 3

	fieldMetaName              = 1
	fieldMetaUID               = 5
	fieldMetaResourceVersion   = 6
	fieldMetaCreationTimestamp = 8
	fieldMetaAnnotations       = 12

	fieldTimeSeconds = 1
	fieldTimeNanos   = 2

	fieldSpecPodCIDR  = 1
	fieldSpecPodCIDRs = 7

	fieldStatusAddresses = 5

	fieldListMetadata = 1
	fieldListItems    = 2
)

// decodeSlimNode decodes a v1.Node in protobuf (the message itself, no
// envelope) straight into what SlimNode would keep of it, plus the
// initial-events-end annotation of a watch-list bookmark (the reflector
// reads it before the informer's transform drops it). The fields it skips
// (images, conditions, managedFields, labels: 90% of a real Node) are
// never decoded, so a kubelet heartbeat costs a scan of its bytes and a
// few small strings instead of a full Node's ~1000 allocations.
func decodeSlimNode(b []byte) (*corev1.Node, error) {
	n := &corev1.Node{}
	if err := mergeSlimNode(b, n); err != nil {
		return nil, err
	}
	return n, nil
}

func mergeSlimNode(b []byte, n *corev1.Node) error {
	r := fieldReader{b: b}
	for r.next() {
		switch r.num {
		case fieldNodeMetadata:
			r.check(mergeSlimMeta(r.bytes(), &n.ObjectMeta), "metadata")
		case fieldNodeSpec:
			r.check(mergeSlimSpec(r.bytes(), &n.Spec), "spec")
		case fieldNodeStatus:
			r.check(mergeSlimStatus(r.bytes(), &n.Status), "status")
		default:
			r.skip()
		}
	}
	return r.err
}

func mergeSlimMeta(b []byte, m *metav1.ObjectMeta) error {
	r := fieldReader{b: b}
	for r.next() {
		switch r.num {
		case fieldMetaName:
			m.Name = r.string()
		case fieldMetaUID:
			m.UID = types.UID(r.string())
		case fieldMetaResourceVersion:
			m.ResourceVersion = r.string()
		case fieldMetaCreationTimestamp:
			t, err := decodeTime(r.bytes())
			r.check(err, "creationTimestamp")
			m.CreationTimestamp = t
		case fieldMetaAnnotations:
			k, v, err := decodePair(r.bytes())
			r.check(err, "annotations")
			if r.err == nil && keepAnnotation(k) {
				if m.Annotations == nil {
					m.Annotations = map[string]string{}
				}
				m.Annotations[string(k)] = string(v)
			}
		default:
			r.skip()
		}
	}
	return r.err
}

// keepAnnotation tells which annotations the slim decode keeps: crosswire's
// own, and the bookmark's end-of-initial-events marker.
func keepAnnotation(k []byte) bool {
	return strings.HasPrefix(string(k), annotationPrefix) || string(k) == metav1.InitialEventsAnnotationKey
}

func mergeSlimSpec(b []byte, s *corev1.NodeSpec) error {
	r := fieldReader{b: b}
	for r.next() {
		switch r.num {
		case fieldSpecPodCIDR:
			s.PodCIDR = r.string()
		case fieldSpecPodCIDRs:
			if v := r.string(); r.err == nil {
				s.PodCIDRs = append(s.PodCIDRs, v)
			}
		default:
			r.skip()
		}
	}
	return r.err
}

func mergeSlimStatus(b []byte, s *corev1.NodeStatus) error {
	r := fieldReader{b: b}
	for r.next() {
		if r.num != fieldStatusAddresses {
			r.skip()
			continue
		}
		typ, addr, err := decodePair(r.bytes())
		r.check(err, "addresses")
		if r.err == nil && string(typ) == string(corev1.NodeInternalIP) {
			s.Addresses = append(s.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: string(addr)})
		}
	}
	return r.err
}

// decodePair returns the two length-delimited fields numbered 1 and 2 of
// a message, aliasing b: a map<string,string> entry (key, value), a
// NodeAddress (type, address), a TypeMeta (apiVersion, kind).
func decodePair(b []byte) (first, second []byte, err error) {
	r := fieldReader{b: b}
	for r.next() {
		switch r.num {
		case 1:
			first = r.bytes()
		case 2:
			second = r.bytes()
		default:
			r.skip()
		}
	}
	return first, second, r.err
}

// decodeTime decodes a metav1.Time as its own protobuf Unmarshal does: an
// empty message is the zero time, anything else local time.
func decodeTime(b []byte) (metav1.Time, error) {
	if len(b) == 0 {
		return metav1.Time{}, nil
	}
	var sec, nsec int64
	r := fieldReader{b: b}
	for r.next() {
		switch r.num {
		case fieldTimeSeconds:
			sec = int64(r.varint())
		case fieldTimeNanos:
			nsec = int64(int32(r.varint()))
		default:
			r.skip()
		}
	}
	if r.err != nil {
		return metav1.Time{}, r.err
	}
	return metav1.Time{Time: time.Unix(sec, nsec).Local()}, nil
}

// decodeSlimNodeList decodes a v1.NodeList in protobuf with its items
// slim (decodeSlimNode) into l.
func decodeSlimNodeList(b []byte, l *corev1.NodeList) error {
	r := fieldReader{b: b}
	for r.next() {
		switch r.num {
		case fieldListMetadata:
			r.check(l.ListMeta.Unmarshal(r.bytes()), "list metadata")
		case fieldListItems:
			l.Items = append(l.Items, corev1.Node{})
			r.check(mergeSlimNode(r.bytes(), &l.Items[len(l.Items)-1]), fmt.Sprintf("item %d", len(l.Items)-1))
		default:
			r.skip()
		}
	}
	return r.err
}

// fieldReader walks the fields of one protobuf message. The first error
// sticks: next then reports the end.
type fieldReader struct {
	b   []byte
	num protowire.Number
	typ protowire.Type
	err error
}

var (
	errWireType = errors.New("unexpected wire type")
	// errGroup: Kubernetes' messages have no groups (a proto2 feature
	// its generator never emits), so a group is damage, not a field to
	// skip. client-go's decoder skips them without checking their
	// markers match.
	errGroup = errors.New("protobuf group in a Kubernetes object")
)

// next reads the next field's tag into num and typ; false at the end of
// the message or after an error.
func (r *fieldReader) next() bool {
	if r.err != nil || len(r.b) == 0 {
		return false
	}
	num, typ, n := protowire.ConsumeTag(r.b)
	if n < 0 {
		r.err = protowire.ParseError(n)
		return false
	}
	r.b, r.num, r.typ = r.b[n:], num, typ
	if typ == protowire.StartGroupType || typ == protowire.EndGroupType {
		r.fail(errGroup)
		return false
	}
	return true
}

// bytes returns the current length-delimited field's content, aliasing the
// input.
func (r *fieldReader) bytes() []byte {
	if r.typ != protowire.BytesType {
		r.fail(errWireType)
		return nil
	}
	v, n := protowire.ConsumeBytes(r.b)
	if n < 0 {
		r.fail(protowire.ParseError(n))
		return nil
	}
	r.b = r.b[n:]
	return v
}

func (r *fieldReader) string() string { return string(r.bytes()) }

func (r *fieldReader) varint() uint64 {
	if r.typ != protowire.VarintType {
		r.fail(errWireType)
		return 0
	}
	v, n := protowire.ConsumeVarint(r.b)
	if n < 0 {
		r.fail(protowire.ParseError(n))
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *fieldReader) skip() {
	n := protowire.ConsumeFieldValue(r.num, r.typ, r.b)
	if n < 0 {
		r.fail(protowire.ParseError(n))
		return
	}
	r.b = r.b[n:]
}

func (r *fieldReader) fail(err error) {
	if r.err == nil {
		r.err = fmt.Errorf("field %d: %w", r.num, err)
	}
}

// check records a nested message's error under what.
func (r *fieldReader) check(err error, what string) {
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%s: %w", what, err)
	}
}
