package controller

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// realNode is a Node as a kubelet, a cloud provider and a
// node-problem-detector write it: labels, images, conditions, nodeInfo,
// managedFields, taints, besides what crosswire reads.
func realNode(name string) *corev1.Node {
	n := mkNode(name, created(1), withPodCIDRs("10.244.7.0/24", "fd00:7::/64"), withKey(testKey(7)),
		withEndpoint("192.168.77.17:51820"), withIP("192.168.77.17"), withAddr(corev1.NodeExternalIP, "203.0.113.17"),
		withAddr(corev1.NodeHostName, name), withAddr(corev1.NodeInternalIP, "fd00:77::17"))
	n.UID, n.ResourceVersion = "uid-7", "1000"
	n.Labels = map[string]string{}
	for i := range 30 {
		n.Labels[fmt.Sprintf("topology.example.com/label-%d", i)] = fmt.Sprint("value-", i)
	}
	n.Annotations["node.alpha.kubernetes.io/ttl"] = "0"
	n.Annotations["volumes.kubernetes.io/controller-managed-attach-detach"] = "true"
	for i := range 45 {
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{
			Names:     []string{fmt.Sprintf("registry.example.com/app-%d@sha256:%064d", i, i), fmt.Sprintf("registry.example.com/app-%d:v1.%d", i, i)},
			SizeBytes: int64(1e6 * (i + 1)),
		})
	}
	for _, c := range []corev1.NodeConditionType{"Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable", "KernelDeadlock", "ReadonlyFilesystem"} {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: c, Status: corev1.ConditionFalse,
			LastHeartbeatTime: metav1.NewTime(t0), LastTransitionTime: metav1.NewTime(t0), Reason: string(c) + "Reason", Message: "all good"})
	}
	n.Status.NodeInfo = corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", OSImage: "Debian GNU/Linux 12", KernelVersion: "6.1.0", ContainerRuntimeVersion: "containerd://2.2.9"}
	n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi")}
	n.Spec.Taints = []corev1.Taint{{Key: "example.com/pool", Value: "a", Effect: corev1.TaintEffectNoSchedule}}
	n.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:status":{"f:conditions":{}}}`)}}
	return n
}

// TestSlimNodeKeepsWhatCrosswireReads: everything crosswire derives from a
// Node is the same from its slim copy, which holds nothing else.
func TestSlimNodeKeepsWhatCrosswireReads(t *testing.T) {
	full := realNode("node7")
	slim := SlimNode(full)
	fp, ferr := ParseNode(full, 51820)
	sp, serr := ParseNode(slim, 51820)
	if ferr != nil || serr != nil || !reflect.DeepEqual(fp, sp) {
		t.Fatalf("parsed full %+v (%v), slim %+v (%v)", fp, ferr, sp, serr)
	}
	fe, _ := SelfEndpoint(full, 51820)
	se, _ := SelfEndpoint(slim, 51820)
	if fe != se {
		t.Fatalf("self endpoint: full %v, slim %v", fe, se)
	}
	if slim.Name != full.Name || slim.UID != full.UID || slim.ResourceVersion != full.ResourceVersion || !slim.CreationTimestamp.Equal(&full.CreationTimestamp) {
		t.Fatalf("identity lost: %+v", slim.ObjectMeta)
	}
	if len(slim.Labels) != 0 || len(slim.ManagedFields) != 0 || len(slim.Status.Images) != 0 || len(slim.Status.Conditions) != 0 ||
		slim.Status.NodeInfo != (corev1.NodeSystemInfo{}) || len(slim.Spec.Taints) != 0 || len(slim.Status.Capacity) != 0 || len(slim.Annotations) != 2 {
		t.Fatalf("slim copy keeps more than crosswire reads: %+v", slim)
	}
	for _, a := range slim.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			t.Fatalf("slim copy keeps address %+v", a)
		}
	}
	full.Annotations[AnnotationPublicKey] = testKey(8)
	if slim.Annotations[AnnotationPublicKey] != testKey(7) {
		t.Fatal("slim copy shares its annotations with the full object")
	}
}

// TestHeartbeatIsSameForCrosswire: what a kubelet's status heartbeat or a
// node-problem-detector changes compares equal after slimming; what
// crosswire reads does not.
func TestHeartbeatIsSameForCrosswire(t *testing.T) {
	base := realNode("node7")
	beat := base.DeepCopy()
	beat.ResourceVersion = "1001"
	for i := range beat.Status.Conditions {
		beat.Status.Conditions[i].LastHeartbeatTime = metav1.NewTime(t0.Add(10 * time.Second))
	}
	beat.Status.Conditions[5].Status = corev1.ConditionTrue // a problem detector's verdict
	beat.Status.Images = beat.Status.Images[1:]
	beat.Labels["new"] = "label"
	beat.ManagedFields[0].Time = &metav1.Time{Time: t0}
	beat.Status.Addresses = append(beat.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeExternalDNS, Address: "x.example.com"})
	if !sameForCrosswire(SlimNode(base), SlimNode(beat)) {
		t.Fatal("a heartbeat differs for crosswire")
	}
	for name, mutate := range map[string]func(*corev1.Node){
		"key":         func(n *corev1.Node) { n.Annotations[AnnotationPublicKey] = testKey(9) },
		"endpoint":    func(n *corev1.Node) { n.Annotations[AnnotationEndpoint] = "192.168.77.99:51820" },
		"override":    func(n *corev1.Node) { n.Annotations[AnnotationEndpointOverride] = "192.168.77.98" },
		"pod CIDRs":   func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.244.8.0/24"} },
		"pod CIDR":    func(n *corev1.Node) { n.Spec.PodCIDR = "10.244.8.0/24" },
		"InternalIP":  func(n *corev1.Node) { n.Status.Addresses[0].Address = "192.168.77.99" },
		"re-created":  func(n *corev1.Node) { n.UID = "uid-8" },
		"created":     func(n *corev1.Node) { n.CreationTimestamp = metav1.NewTime(t0) },
		"annotations": func(n *corev1.Node) { n.Annotations[AnnotationPodCIDRs] = "10.244.9.0/24" },
	} {
		n := base.DeepCopy()
		mutate(n)
		if sameForCrosswire(SlimNode(base), SlimNode(n)) {
			t.Errorf("%s: a change crosswire reads compares equal", name)
		}
	}
}
