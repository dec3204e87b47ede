package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// What a Node of a managed cloud cluster carries, so that the agent's
// informer decodes, caches and compares objects of the real size (10-20 KB
// with managedFields) rather than the few hundred bytes crosswire reads.
// The shape follows GKE nodes (labels, annotations, NPD conditions); EKS
// and AKS nodes are of the same size and make-up.

// Field managers of the writers of a real Node, so that managedFields has
// the entries a real one has.
const (
	managerKubelet    = "kubelet"
	managerKCM        = "kube-controller-manager"
	managerNPD        = "node-problem-detector"
	managerCloud      = "cloud-controller-manager"
	managerCrosswire  = "crosswire-agent"
	imagesPerNode     = 45
	workloadImageRepo = "us-docker.pkg.dev/acme-prod/apps/"
)

// nodePool is the pool fake node i belongs to: pools of 100 nodes, every
// fourth pool tainted for batch work.
func nodePool(i int) (name string, tainted bool) {
	p := i / 100
	return fmt.Sprintf("pool-%03d", p), p%4 == 3
}

func fakeZone(i int) string { return "us-central1-" + string(rune('a'+i%3)) }

// fakeLabels are what the kubelet, the cloud provider and the node pool put
// on a Node: 31 labels.
func fakeLabels(i int) map[string]string {
	pool, _ := nodePool(i)
	zone := fakeZone(i)
	return map[string]string{
		"beta.kubernetes.io/arch":                      "amd64",
		"beta.kubernetes.io/os":                        "linux",
		"beta.kubernetes.io/instance-type":             "n2-standard-8",
		"kubernetes.io/arch":                           "amd64",
		"kubernetes.io/os":                             "linux",
		"kubernetes.io/hostname":                       fakeName(i),
		"node.kubernetes.io/instance-type":             "n2-standard-8",
		"topology.kubernetes.io/region":                "us-central1",
		"topology.kubernetes.io/zone":                  zone,
		"failure-domain.beta.kubernetes.io/region":     "us-central1",
		"failure-domain.beta.kubernetes.io/zone":       zone,
		"topology.gke.io/zone":                         zone,
		"cloud.google.com/gke-nodepool":                pool,
		"cloud.google.com/gke-os-distribution":         "cos",
		"cloud.google.com/gke-boot-disk":               "pd-balanced",
		"cloud.google.com/gke-container-runtime":       "containerd",
		"cloud.google.com/gke-cpu-scaling-level":       "8",
		"cloud.google.com/gke-logging-variant":         "DEFAULT",
		"cloud.google.com/gke-max-pods-per-node":       "110",
		"cloud.google.com/gke-memory-gb-scaling-level": "32",
		"cloud.google.com/gke-provisioning":            "standard",
		"cloud.google.com/gke-stack-type":              "IPV4",
		"cloud.google.com/machine-family":              "n2",
		"cloud.google.com/private-node":                "true",
		"cloud.google.com/gke-netd-ready":              "true",
		"iam.gke.io/gke-metadata-server-enabled":       "true",
		"node.kubernetes.io/masq-agent-ds-ready":       "true",
		"addon.gke.io/node-local-dns-ds-ready":         "true",
		"acme.example/team":                            fmt.Sprintf("team-%02d", i/100%17),
		"acme.example/environment":                     "production",
		"acme.example/workload-class":                  []string{"general", "memory", "batch", "latency"}[i/100%4],
	}
}

// kubeletAnnotations are the annotations a GKE node registers with.
func kubeletAnnotations(i int) map[string]string {
	return map[string]string{
		"volumes.kubernetes.io/controller-managed-attach-detach": "true",
		"container.googleapis.com/instance_id":                   fmt.Sprint(7000000000000000000 + i*7919),
		"csi.volume.kubernetes.io/nodeid": fmt.Sprintf(`{"pd.csi.storage.gke.io":"projects/acme-prod/zones/%s/instances/%s"}`,
			fakeZone(i), fakeName(i)),
		"node.gke.io/last-applied-node-labels": "acme.example/environment=production,acme.example/team=" + fakeLabels(i)["acme.example/team"] +
			",cloud.google.com/gke-boot-disk=pd-balanced,cloud.google.com/gke-container-runtime=containerd,cloud.google.com/gke-cpu-scaling-level=8," +
			"cloud.google.com/gke-logging-variant=DEFAULT,cloud.google.com/gke-max-pods-per-node=110,cloud.google.com/gke-memory-gb-scaling-level=32," +
			"cloud.google.com/gke-nodepool=" + fakeLabels(i)["cloud.google.com/gke-nodepool"] + ",cloud.google.com/gke-os-distribution=cos," +
			"cloud.google.com/gke-provisioning=standard,cloud.google.com/gke-stack-type=IPV4,cloud.google.com/machine-family=n2,cloud.google.com/private-node=true",
		"node.gke.io/last-applied-node-taints": lastAppliedTaints(i),
	}
}

func lastAppliedTaints(i int) string {
	if _, tainted := nodePool(i); tainted {
		return "dedicated=batch:NoSchedule"
	}
	return ""
}

func fakeTaints(i int) []corev1.Taint {
	if _, tainted := nodePool(i); tainted {
		return []corev1.Taint{{Key: "dedicated", Value: "batch", Effect: corev1.TaintEffectNoSchedule}}
	}
	return nil
}

// shapedNode is fake node i as its kubelet registers it: metadata and spec
// only (no pod CIDR yet: kube-controller-manager assigns it).
func shapedNode(i int) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: fakeName(i), Labels: fakeLabels(i), Annotations: kubeletAnnotations(i)},
		Spec: corev1.NodeSpec{
			ProviderID: fmt.Sprintf("gce://acme-prod/%s/%s", fakeZone(i), fakeName(i)),
			Taints:     fakeTaints(i),
		},
	}
}

// kubeletStatus fills in what the kubelet reports at registration: its
// conditions, addresses, capacity, node info and images.
func kubeletStatus(n *corev1.Node, i int, now time.Time) {
	t := metav1.NewTime(now.Truncate(time.Second))
	cond := func(typ corev1.NodeConditionType, status corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: status, LastHeartbeatTime: t, LastTransitionTime: t, Reason: reason, Message: msg}
	}
	n.Status.Conditions = append(n.Status.Conditions,
		cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
		cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
		cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
		cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status. AppArmor enabled"),
	)
	n.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: fakeIP(i)},
		{Type: corev1.NodeInternalDNS, Address: fakeName(i) + "." + fakeZone(i) + ".c.acme-prod.internal"},
		{Type: corev1.NodeHostName, Address: fakeName(i) + "." + fakeZone(i) + ".c.acme-prod.internal"},
	}
	n.Status.Capacity = corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("8"),
		corev1.ResourceMemory:           resource.MustParse("32880736Ki"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("98831908Ki"),
		"hugepages-1Gi":                 resource.MustParse("0"),
		"hugepages-2Mi":                 resource.MustParse("0"),
	}
	n.Status.Allocatable = corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("7910m"),
		corev1.ResourceMemory:           resource.MustParse("29094496Ki"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("47060071478"),
		"hugepages-1Gi":                 resource.MustParse("0"),
		"hugepages-2Mi":                 resource.MustParse("0"),
	}
	n.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}}
	id := digest("machine", i)
	n.Status.NodeInfo = corev1.NodeSystemInfo{
		MachineID: id[:32], SystemUUID: fmt.Sprintf("%s-%s-%s-%s-%s", id[32:40], id[40:44], id[44:48], id[48:52], id[52:64]),
		BootID: fmt.Sprintf("%s-%s-%s-%s-%s", id[:8], id[8:12], id[12:16], id[16:20], id[20:32]), KernelVersion: "6.6.56+",
		OSImage: "Container-Optimized OS from Google", ContainerRuntimeVersion: "containerd://1.7.24",
		KubeletVersion: "v1.31.5-gke.1023000", OperatingSystem: "linux", Architecture: "amd64",
	}
	n.Status.Images = fakeImages(i, 0)
}

// systemImages run on every node (DaemonSets, the pause image); the rest of
// a node's images are its workloads'.
var systemImages = []string{
	"gke.gcr.io/gke-metrics-agent", "gke.gcr.io/fluent-bit", "gke.gcr.io/fluent-bit-gke-exporter", "gke.gcr.io/netd",
	"gke.gcr.io/kube-proxy-amd64", "gke.gcr.io/ip-masq-agent", "gke.gcr.io/pd-csi-driver", "gke.gcr.io/gcp-compute-persistent-disk-csi-driver",
	"gke.gcr.io/csi-node-driver-registrar", "gke.gcr.io/k8s-dns-node-cache", "gke.gcr.io/gke-metadata-server", "gke.gcr.io/node-problem-detector",
	"gke.gcr.io/prometheus-to-sd", "gke.gcr.io/addon-resizer", "gke.gcr.io/cluster-proportional-autoscaler", "gke.gcr.io/event-exporter",
	"registry.k8s.io/pause", "registry.k8s.io/metrics-server/metrics-server", "registry.k8s.io/coredns/coredns",
	"docker.io/calico/node", "docker.io/calico/cni", "quay.io/prometheus/node-exporter", "quay.io/jetstack/cert-manager-controller",
	"docker.io/datadog/agent", "docker.io/istio/proxyv2", "ghcr.io/crosswire/crosswire",
}

// fakeImages is the image list of fake node i after gen image changes: the
// system images and workload images that differ between nodes, each with
// its digest name and (for most) a tag name, as the kubelet lists them.
func fakeImages(i, gen int) []corev1.ContainerImage {
	images := make([]corev1.ContainerImage, 0, imagesPerNode)
	add := func(repo, tag string, salt int) {
		d := digest(repo+tag, salt)
		names := []string{repo + "@sha256:" + d}
		if salt%5 != 0 { // some images are only known by digest
			names = append(names, repo+":"+tag)
		}
		size := 2_000_000 + int64(d[0])*int64(d[1])*int64(d[2])*7
		images = append(images, corev1.ContainerImage{Names: names, SizeBytes: size})
	}
	for k, repo := range systemImages {
		add(repo, fmt.Sprintf("v1.%d.%d-gke.%d", k%30, k%7, 100+k), k+1)
	}
	// Each generation gives one workload, in turn, a new release (a new
	// digest and tag): what a rollout does to the node's image list.
	slots := imagesPerNode - len(systemImages)
	for k := range slots {
		svc := (i*7 + k) % 400
		rel := gen / slots
		if k < gen%slots {
			rel++
		}
		add(fmt.Sprintf("%sservice-%03d", workloadImageRepo, svc), fmt.Sprintf("2026.11.%d-%d", svc%28+1, rel), svc*1000+rel+1)
	}
	return images
}

// digest is a deterministic 64-hex-digit sha256 for name and salt.
func digest(name string, salt int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", name, salt))
	return hex.EncodeToString(h[:])
}

// npdConditionTypes are node-problem-detector's default conditions.
var npdConditionTypes = []struct{ typ, reason, msg string }{
	{"KernelDeadlock", "KernelHasNoDeadlock", "kernel has no deadlock"},
	{"ReadonlyFilesystem", "FilesystemIsNotReadOnly", "Filesystem is not read-only"},
	{"FrequentKubeletRestart", "NoFrequentKubeletRestart", "kubelet is functioning properly"},
	{"FrequentDockerRestart", "NoFrequentDockerRestart", "docker is functioning properly"},
	{"FrequentContainerdRestart", "NoFrequentContainerdRestart", "containerd is functioning properly"},
	{"FrequentUnregisterNetDevice", "NoFrequentUnregisterNetDevice", "node is functioning properly"},
	{"CorruptDockerOverlay2", "NoCorruptDockerOverlay2", "docker overlay2 is functioning properly"},
}

// kubeletConditionTypes are the conditions the kubelet owns.
var kubeletConditionTypes = []corev1.NodeConditionType{
	corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeReady,
}

// npdPatch is node-problem-detector's status patch: its conditions in full
// at start (heartbeatOnly false), or only their heartbeat times, as it
// sends them every heartbeat period.
func npdPatch(now time.Time, heartbeatOnly bool) map[string]any {
	t := now.UTC().Format(time.RFC3339)
	var conds []map[string]any
	for _, c := range npdConditionTypes {
		m := map[string]any{"type": c.typ, "lastHeartbeatTime": t}
		if !heartbeatOnly {
			m["status"], m["reason"], m["message"], m["lastTransitionTime"] = "False", c.reason, c.msg, t
		}
		conds = append(conds, m)
	}
	return map[string]any{"status": map[string]any{"conditions": conds}}
}

// routePatch is the cloud route controller's condition: the node's pod
// CIDR is routed.
func routePatch(now time.Time) map[string]any {
	t := now.UTC().Format(time.RFC3339)
	return map[string]any{"status": map[string]any{"conditions": []map[string]any{{
		"type": string(corev1.NodeNetworkUnavailable), "status": "False", "reason": "RouteCreated",
		"message": "NodeController create implicit route", "lastHeartbeatTime": t, "lastTransitionTime": t,
	}}}}
}

// kubeletPatch is the kubelet's periodic status patch: its conditions'
// heartbeat times and, when images is not nil, the new image list (an
// atomic list, so sent whole).
func kubeletPatch(now time.Time, images []corev1.ContainerImage) map[string]any {
	t := now.UTC().Format(time.RFC3339)
	var conds []map[string]any
	for _, c := range kubeletConditionTypes {
		conds = append(conds, map[string]any{"type": string(c), "lastHeartbeatTime": t})
	}
	status := map[string]any{"conditions": conds}
	if images != nil {
		status["images"] = images
	}
	return map[string]any{"status": status}
}
