package controller

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// annotationPrefix is the prefix of every annotation crosswire reads.
const annotationPrefix = "crosswire.dev/"

// SlimNode returns a new Node holding only what crosswire reads: name,
// UID, resourceVersion, creation time, the crosswire.dev/
// annotations, the pod CIDRs and the InternalIP addresses. A Node as a
// kubelet and a cloud provider write it is 10–20 KB, mostly images,
// conditions, labels and managedFields that crosswire never reads; the
// informer keeps every Node of the cluster, so those fields were most of
// the agent's memory in a large cluster (docs/benchmarks.md).
func SlimNode(n *corev1.Node) *corev1.Node {
	s := &corev1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              n.Name,
			UID:               n.UID,
			ResourceVersion:   n.ResourceVersion,
			CreationTimestamp: n.CreationTimestamp,
		},
		Spec: corev1.NodeSpec{PodCIDR: n.Spec.PodCIDR, PodCIDRs: slices.Clone(n.Spec.PodCIDRs)},
	}
	for k, v := range n.Annotations {
		if strings.HasPrefix(k, annotationPrefix) {
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			s.Annotations[k] = v
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			s.Status.Addresses = append(s.Status.Addresses, a)
		}
	}
	return s
}

// slimTransform is SlimNode as an informer transform: it runs before an
// object enters the cache, so the full object is garbage once decoded.
// Tombstones are passed through (their object was slimmed when it entered
// the cache).
func slimTransform(obj any) (any, error) {
	if n, ok := obj.(*corev1.Node); ok {
		return SlimNode(n), nil
	}
	return obj, nil
}

var _ cache.TransformFunc = slimTransform

// sameForCrosswire reports whether two slim Nodes are the same to
// crosswire, whatever their resourceVersions: a kubelet's status heartbeat
// changes only fields the transform dropped, so the two slim objects of
// its update event compare equal and the event costs nothing more.
func sameForCrosswire(a, b *corev1.Node) bool {
	return a.Name == b.Name && a.UID == b.UID &&
		a.CreationTimestamp.Equal(&b.CreationTimestamp) &&
		a.Spec.PodCIDR == b.Spec.PodCIDR && slices.Equal(a.Spec.PodCIDRs, b.Spec.PodCIDRs) &&
		maps.Equal(a.Annotations, b.Annotations) &&
		slices.Equal(a.Status.Addresses, b.Status.Addresses)
}
