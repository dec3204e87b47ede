package controller

import (
	"bytes"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
)

// protobufMagic starts every object the API server sends in protobuf
// (k8s.io/apimachinery/pkg/runtime/serializer/protobuf).
var protobufMagic = []byte{0x6b, 0x38, 0x73, 0x00}

// Field numbers of runtime.Unknown, the envelope of every protobuf object.
const (
	fieldUnknownTypeMeta        = 1
	fieldUnknownRaw             = 2
	fieldUnknownContentEncoding = 3
)

// NewNodeClient returns a client for Nodes that asks for protobuf and
// decodes every Node and NodeList it receives slim (decodeSlimNode): what
// the informer needs, without decoding the rest. Sharing h with the
// agent's other clients keeps one connection to the API server.
func NewNodeClient(cfg *rest.Config, h *http.Client) (corev1client.NodeInterface, error) {
	c := rest.CopyConfig(cfg)
	gv := corev1.SchemeGroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/api"
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	c.NegotiatedSerializer = SlimNodeSerializer(rest.CodecFactoryForGeneratedClient(scheme.Scheme, scheme.Codecs).WithoutConversion())
	rc, err := rest.RESTClientForConfigAndClient(c, h)
	if err != nil {
		return nil, fmt.Errorf("node client: %w", err)
	}
	return corev1client.New(rc).Nodes(), nil
}

// SlimNodeSerializer is base with its protobuf decoder replaced by one
// that decodes v1 Nodes and NodeLists slim and everything else (a Status,
// a watch's error) as base does. JSON stays base's (a server that speaks
// only JSON still works, at the full cost).
func SlimNodeSerializer(base runtime.NegotiatedSerializer) runtime.NegotiatedSerializer {
	return slimNegotiated{base}
}

type slimNegotiated struct{ runtime.NegotiatedSerializer }

func (s slimNegotiated) SupportedMediaTypes() []runtime.SerializerInfo {
	infos := s.NegotiatedSerializer.SupportedMediaTypes()
	out := make([]runtime.SerializerInfo, len(infos))
	for i, info := range infos {
		if info.MediaType == runtime.ContentTypeProtobuf {
			info.Serializer = slimNodeDecoder{info.Serializer}
		}
		out[i] = info
	}
	return out
}

// slimNodeDecoder is a protobuf serializer whose Decode takes v1 Nodes
// and NodeLists itself.
type slimNodeDecoder struct{ runtime.Serializer }

func (d slimNodeDecoder) Decode(data []byte, defaults *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	apiVersion, kind, raw, ok := protobufEnvelope(data)
	if !ok || string(apiVersion) != "v1" {
		return d.Serializer.Decode(data, defaults, into)
	}
	switch string(kind) {
	case "Node":
		gvk := corev1.SchemeGroupVersion.WithKind("Node")
		n, isNode := into.(*corev1.Node)
		if into != nil && !isNode {
			break
		}
		s, err := decodeSlimNode(raw)
		if err != nil {
			return nil, &gvk, fmt.Errorf("decoding Node: %w", err)
		}
		if n == nil {
			return s, &gvk, nil
		}
		*n = *s
		return n, &gvk, nil
	case "NodeList":
		gvk := corev1.SchemeGroupVersion.WithKind("NodeList")
		l, isList := into.(*corev1.NodeList)
		if into != nil && !isList {
			break
		}
		if l == nil {
			l = &corev1.NodeList{}
		} else {
			*l = corev1.NodeList{}
		}
		if err := decodeSlimNodeList(raw, l); err != nil {
			return nil, &gvk, fmt.Errorf("decoding NodeList: %w", err)
		}
		return l, &gvk, nil
	}
	return d.Serializer.Decode(data, defaults, into)
}

// protobufEnvelope reads the runtime.Unknown around a protobuf object:
// its apiVersion, kind and raw message, all aliasing data. ok is false for
// anything the slim decoder does not take: not protobuf, malformed, or
// with a content encoding.
func protobufEnvelope(data []byte) (apiVersion, kind, raw []byte, ok bool) {
	if !bytes.HasPrefix(data, protobufMagic) {
		return nil, nil, nil, false
	}
	r := fieldReader{b: data[len(protobufMagic):]}
	for r.next() {
		switch r.num {
		case fieldUnknownTypeMeta:
			var err error
			apiVersion, kind, err = decodePair(r.bytes())
			r.check(err, "typeMeta")
		case fieldUnknownRaw:
			raw = r.bytes()
		case fieldUnknownContentEncoding:
			if len(r.bytes()) > 0 {
				return nil, nil, nil, false
			}
		default:
			r.skip()
		}
	}
	return apiVersion, kind, raw, r.err == nil
}
