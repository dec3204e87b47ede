package main

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// A fake Node with its full status is as large as a cloud provider's
// before managedFields (which the API server adds, ~3-5 KB): 8-20 KB.
func TestShapedNodeSize(t *testing.T) {
	n := shapedNode(1234)
	kubeletStatus(n, 1234, time.Now())
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 8_000 || len(b) > 20_000 {
		t.Errorf("fake Node is %d bytes of JSON, want 8-20 KB", len(b))
	}
	if testing.Verbose() {
		t.Logf("fake Node: %d bytes of JSON", len(b))
	}
	if got := len(n.Labels); got < 30 {
		t.Errorf("%d labels, want >= 30", got)
	}
	if got := len(n.Status.Images); got != imagesPerNode {
		t.Errorf("%d images, want %d", got, imagesPerNode)
	}
}

// Every image generation replaces exactly one workload image's release,
// and different nodes run different workloads.
func TestFakeImagesChangeOneAtATime(t *testing.T) {
	names := func(imgs []corev1.ContainerImage) map[string]bool {
		m := map[string]bool{}
		for _, im := range imgs {
			m[im.Names[0]] = true
		}
		return m
	}
	prev := names(fakeImages(7, 0))
	if len(prev) != imagesPerNode {
		t.Fatalf("%d distinct images, want %d", len(prev), imagesPerNode)
	}
	for gen := 1; gen <= 2*imagesPerNode; gen++ {
		cur := names(fakeImages(7, gen))
		gone := 0
		for n := range prev {
			if !cur[n] {
				gone++
			}
		}
		if gone != 1 || len(cur) != imagesPerNode {
			t.Fatalf("generation %d: %d images replaced (want 1), %d images", gen, gone, len(cur))
		}
		prev = cur
	}
	a, b := names(fakeImages(1, 0)), names(fakeImages(2, 0))
	same := 0
	for n := range a {
		if b[n] {
			same++
		}
	}
	if same == imagesPerNode {
		t.Error("two nodes have the same images")
	}
}

// The heartbeats alternate kubelet and node-problem-detector, visit every
// node in turn, touch only status fields crosswire does not read, and
// change images on one kubelet patch in imageChangeEvery.
func TestHeartbeatSequence(t *testing.T) {
	h := newHeartbeater(nil, 5, 1)
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	node := shapedNode(3)
	kubeletStatus(node, 3, now.Add(-time.Hour))
	node.Spec.PodCIDR = "10.128.6.0/24"
	orig, err := json.Marshal(node)
	if err != nil {
		t.Fatal(err)
	}
	// As created: with node-problem-detector's and the route controller's
	// conditions too.
	for _, p := range []map[string]any{npdPatch(now.Add(-time.Hour), false), routePatch(now.Add(-time.Hour))} {
		orig = applyPatch(t, orig, p)
	}
	if err := json.Unmarshal(orig, node); err != nil {
		t.Fatal(err)
	}
	if len(node.Status.Conditions) != 12 {
		t.Fatalf("%d conditions, want 12", len(node.Status.Conditions))
	}
	seen := map[int]int{}
	images := 0
	for k := range 2 * 5 * imageChangeEvery {
		j := h.nextJob(now)
		seen[j.node]++
		want := managerKubelet
		if k%2 == 1 {
			want = managerNPD
		}
		if j.manager != want {
			t.Fatalf("heartbeat %d by %s, want %s", k, j.manager, want)
		}
		if st, _ := j.body["status"].(map[string]any); st["images"] != nil {
			images++
		}
		if len(j.body) != 1 || j.body["status"] == nil {
			t.Fatalf("heartbeat %d patches %v, want status only", k, j.body)
		}
		if j.node != 3 {
			continue
		}
		// Applied to a real-shaped Node, the patch keeps everything
		// crosswire reads.
		out := applyPatch(t, orig, j.body)
		var got corev1.Node
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Status.Conditions) != len(node.Status.Conditions) || got.Status.Addresses[0] != node.Status.Addresses[0] ||
			got.Spec.PodCIDR != node.Spec.PodCIDR || len(got.Annotations) != len(node.Annotations) {
			t.Fatalf("heartbeat %d changed more than heartbeat times and images:\n%s", k, out)
		}
		moved := 0
		for _, c := range got.Status.Conditions {
			if c.LastHeartbeatTime.Time.Equal(now) {
				moved++
			}
		}
		if want := map[string]int{managerKubelet: 4, managerNPD: 7}[j.manager]; moved != want {
			t.Fatalf("heartbeat %d by %s moved %d heartbeat times, want %d", k, j.manager, moved, want)
		}
	}
	for i := range 5 {
		if seen[i] != 2*imageChangeEvery {
			t.Errorf("node %d got %d heartbeats, want %d", i, seen[i], 2*imageChangeEvery)
		}
	}
	if images != 5 {
		t.Errorf("%d heartbeats changed images, want 5 (one kubelet patch in %d)", images, imageChangeEvery)
	}
}

func TestParseStatCPU(t *testing.T) {
	// comm with a space and a ')', utime 250 and stime 50 ticks.
	stat := "4242 (cross wire) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 12 0 100 1000000 2000"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if got != 3.0 {
		t.Errorf("cpu %v s, want 3 (300 ticks)", got)
	}
	if _, err := parseStatCPU("4242 (short) S 1"); err == nil {
		t.Error("truncated stat: want an error")
	}
}

func applyPatch(t testing.TB, orig []byte, patch map[string]any) []byte {
	t.Helper()
	p, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := strategicpatch.StrategicMergePatch(orig, p, corev1.Node{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
