package kubecluster

import (
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// Node returns the node called name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// PodNS gives a running pod's network namespace a name under
// /var/run/netns (<prefix>-<pod name>-<pid>), so netcluster's helpers (Ping,
// ServeTCP, DialTCP, Exec) work inside the pod as they do in a netcluster
// pod. The pod is found through its cgroup on its node; the name carries
// the cluster's prefix, so Teardown removes it.
func (c *Cluster) PodNS(pod *corev1.Pod) (string, error) {
	n := c.Node(pod.Spec.NodeName)
	if n == nil {
		return "", fmt.Errorf("pod %s is on %q, not a node of this cluster", pod.Name, pod.Spec.NodeName)
	}
	pid, err := podPid(n.cgroupRoot, string(pod.UID))
	if err != nil {
		return "", err
	}
	// The pid keeps names apart when a pod's sandbox is recreated (a node
	// reboot) and the pod gets a new namespace.
	name := fmt.Sprintf("%s-%s-%d", c.Net.Prefix, pod.Name, pid)
	file := filepath.Join("/var/run/netns", name)
	if err := os.WriteFile(file, nil, 0o444); err != nil {
		return "", fmt.Errorf("pod namespace name %s: %w", name, err)
	}
	if err := run("mount", "--bind", fmt.Sprintf("/proc/%d/ns/net", pid), file); err != nil {
		return "", fmt.Errorf("pod %s: %w", pod.Name, err)
	}
	return name, nil
}
