package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestParseNodePQPort: the published key-exchange port is read; a bad one
// withholds post-quantum from the node but never rejects it.
func TestParseNodePQPort(t *testing.T) {
	for in, want := range map[string]uint16{"51821": 51821, " 7 ": 7, "": 0, "x": 0, "70000": 0, "-1": 0} {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{
				AnnotationPublicKey: testKey(2), AnnotationPQPort: in,
			}},
			Spec: corev1.NodeSpec{PodCIDR: "10.244.2.0/24"},
		}
		p, err := ParseNode(n, 51820)
		if err != nil {
			t.Errorf("pq-port %q: node rejected: %v", in, err)
		}
		if p.PQPort != want {
			t.Errorf("pq-port %q: got %d, want %d", in, p.PQPort, want)
		}
	}
}

// TestTrackerPQPortChange: publishing (or withdrawing) the key-exchange
// port is a change of the peer, delivered as an upsert.
func TestTrackerPQPortChange(t *testing.T) {
	node := func(port string) *corev1.Node {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "peer", Annotations: map[string]string{AnnotationPublicKey: testKey(2)}},
			Spec:       corev1.NodeSpec{PodCIDR: "10.244.2.0/24"},
			Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.77.2"}}},
		}
		if port != "" {
			n.Annotations[AnnotationPQPort] = port
		}
		return n
	}
	tr := NewTracker("self", pubKey(0xee), 51820, false)
	tr.Reset([]*corev1.Node{node("")})
	for _, port := range []string{"51821", ""} {
		c := tr.Set("peer", node(port))
		want := uint16(0)
		if port != "" {
			want = 51821
		}
		if len(c.Upsert) != 1 || c.Upsert[0].PQPort != want {
			t.Fatalf("pq-port %q: change %+v, want one upsert with port %d", port, c.Upsert, want)
		}
	}
}
