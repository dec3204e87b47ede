package controller

import "testing"

// TestKubePublishesPQPort: an agent with post-quantum on publishes its
// exchange port on its own Node, and removes a stale one when it is off.
func TestKubePublishesPQPort(t *testing.T) {
	self := kubeNode(selfName, withIP("192.168.77.1"), withPodCIDR("10.244.0.0/24"))
	r := newKube(t, self)
	r.src.PQPort = 51821
	r.start()
	r.waitFor("pq-port published", func() bool { return r.get(selfName).Annotations[AnnotationPQPort] == "51821" })
	r.stop()

	r2 := newKube(t, r.get(selfName)) // the next agent runs with post-quantum off
	r2.start()
	r2.waitFor("pq-port removed", func() bool {
		_, ok := r2.get(selfName).Annotations[AnnotationPQPort]
		return !ok
	})
}
