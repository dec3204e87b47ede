package cwcluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/crosswire/crosswire/test/netcluster"
)

// KubeSource switches agents from the NodeList file to a real API server:
// each node's agent gets its own kubeconfig, and Node objects are created
// through the admin client the way a kubelet would register them (without
// crosswire's annotations: the agents publish those).
type KubeSource struct {
	Admin       kubernetes.Interface
	Kubeconfigs map[string]string // node name -> kubeconfig path
}

// APINode is the Node a kubelet would register for n.
func (cw *Cluster) APINode(n *netcluster.Node) *corev1.Node {
	node := cw.Node(n)
	node.Annotations = nil
	node.CreationTimestamp = metav1.Time{}
	return &node
}

// RegisterNode creates n's Node object with its status addresses.
func (cw *Cluster) RegisterNode(ctx context.Context, n *netcluster.Node) error {
	if cw.Kube == nil {
		return fmt.Errorf("register %s: no API server configured", n.Name)
	}
	want := cw.APINode(n)
	created, err := cw.Kube.Admin.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node %s: %w", n.Name, err)
	}
	created.Status = want.Status
	if _, err := cw.Kube.Admin.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node %s status: %w", n.Name, err)
	}
	return nil
}

// DeleteNode deletes n's Node object.
func (cw *Cluster) DeleteNode(ctx context.Context, n *netcluster.Node) error {
	if err := cw.Kube.Admin.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete node %s: %w", n.Name, err)
	}
	return nil
}
