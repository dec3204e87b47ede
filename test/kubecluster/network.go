package kubecluster

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/test/netcluster"
)

// wireNodes does what a cloud's route controller and a node's CNI
// installer would: once the controller-manager has given a node its pod
// CIDR, the node gets its bridge network configuration and every other
// node a host-gw route to it (plaintext; crosswire's job is to encrypt what
// crosses). Then it waits until every node is Ready.
func (c *Cluster) wireNodes(ctx context.Context) error {
	cs := c.Client()
	pending := map[string]*Node{}
	for _, n := range c.Nodes {
		pending[n.Name] = n
	}
	for len(pending) > 0 {
		for name, n := range pending {
			if err := c.nodeAlive(n); err != nil {
				return err
			}
			node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil || node.Spec.PodCIDR == "" {
				continue
			}
			p, err := netip.ParsePrefix(node.Spec.PodCIDR)
			if err != nil {
				return fmt.Errorf("%s pod CIDR %q: %w", name, node.Spec.PodCIDR, err)
			}
			n.PodCIDR = p
			tmp := filepath.Join(n.Dir, "cni", ".10-bridge.conflist")
			if err := os.WriteFile(tmp, []byte(cniConfig(n)), 0o644); err != nil {
				return fmt.Errorf("%s CNI config: %w", name, err)
			}
			if err := os.Rename(tmp, filepath.Join(n.Dir, "cni", "10-bridge.conflist")); err != nil {
				return fmt.Errorf("%s CNI config: %w", name, err)
			}
			delete(pending, name)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("nodes without a pod CIDR: %v: %w", keys(pending), err)
		}
	}
	for _, on := range c.Nodes {
		for _, owner := range c.Nodes {
			if owner != on {
				if err := c.Net.RoutePodCIDR(on.Node, owner.PodCIDR, owner.Node); err != nil {
					return err
				}
			}
		}
	}
	return c.WaitReady(ctx)
}

// WaitReady waits until every node reports Ready.
func (c *Cluster) WaitReady(ctx context.Context) error {
	cs := c.Client()
	for {
		var notReady []string
		for _, n := range c.Nodes {
			if err := c.nodeAlive(n); err != nil {
				return err
			}
			node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil || !nodeReady(node) {
				notReady = append(notReady, n.Name)
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return fmt.Errorf("nodes not Ready: %v: %w", notReady, err)
		}
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Alive fails with the tail of the log of any cluster process that
// exited: a wait on the cluster's state can stop at once instead of timing
// out.
func (c *Cluster) Alive() error {
	for _, n := range c.Nodes {
		if err := c.nodeAlive(n); err != nil {
			return err
		}
	}
	return nil
}

// nodeAlive fails with the tail of the log of a node or control plane
// process that exited.
func (c *Cluster) nodeAlive(n *Node) error {
	for _, p := range []*netcluster.Process{n.containerd, n.kubelet, n.proxy, c.controllerManager, c.scheduler, c.registry} {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited; log:\n%s", p, tail(p.Log(), 30))
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
