package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/test/cwcluster"
)

// Fake node i (from 0) is named fake-<i>. Its pod CIDR is a /24 in
// 10.128.0.0/9 with a free /24 after it, so no two elements of the
// interval set touch; its InternalIP is in 172.16.0.0/12, behind the node
// namespace's default route to an underlay gateway that never answers.
// maxFake bounds i.
const maxFake = (244 - 128) * 128 // below 10.244.0.0/16, the namespace cluster's pods

func fakeName(i int) string { return fmt.Sprintf("fake-%05d", i) }

func fakeCIDR(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + i/128), byte(2 * (i % 128)), 0}), 24)
}

// eventCIDR is the extra pod CIDR event k gives a Node: 10.64.0.0/10, the
// same spacing.
func eventCIDR(k int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(64 + (k/128)%64), byte(2 * (k % 128)), 0}), 24)
}

func fakeIP(i int) string {
	return netip.AddrFrom4([4]byte{172, byte(16 + i/65536), byte(i / 256), byte(i)}).String()
}

// randomKey is a valid WireGuard public key nobody holds the private half
// of: the agent only needs to accept and program it.
func randomKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[31] |= 1 // never all zeros
	return base64.StdEncoding.EncodeToString(b[:]), nil
}

// createFake creates fake node i the way a real Node comes to be, each
// part written by its own field manager so that managedFields is what a
// real cluster's is: the kubelet registers it (labels, annotations,
// providerID, taints), kube-controller-manager assigns its pod CIDR, the
// kubelet posts its status (conditions, addresses, capacity, node info,
// images), node-problem-detector adds its conditions, the cloud route
// controller NetworkUnavailable, and its crosswire agent publishes the key
// and endpoint.
func createFake(ctx context.Context, admin kubernetes.Interface, i int) error {
	if i >= maxFake {
		return fmt.Errorf("fake node %d: only %d fit the address plan", i, maxFake)
	}
	key, err := randomKey()
	if err != nil {
		return err
	}
	nodes := admin.CoreV1().Nodes()
	name := fakeName(i)
	if _, err := nodes.Create(ctx, shapedNode(i), metav1.CreateOptions{FieldManager: managerKubelet}); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	cidr := fakeCIDR(i).String()
	spec := map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{"node.alpha.kubernetes.io/ttl": "0"}},
		"spec":     map[string]any{"podCIDR": cidr, "podCIDRs": []string{cidr}},
	}
	cur, err := patch(ctx, admin, name, managerKCM, types.StrategicMergePatchType, spec)
	if err != nil {
		return err
	}
	now := time.Now()
	kubeletStatus(cur, i, now)
	if _, err := nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{FieldManager: managerKubelet}); err != nil {
		return fmt.Errorf("status of %s: %w", name, err)
	}
	if _, err := patch(ctx, admin, name, managerNPD, types.StrategicMergePatchType, npdPatch(now, false), "status"); err != nil {
		return err
	}
	if _, err := patch(ctx, admin, name, managerCloud, types.StrategicMergePatchType, routePatch(now), "status"); err != nil {
		return err
	}
	ann := map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		controller.AnnotationPublicKey: key,
		controller.AnnotationEndpoint:  netip.AddrPortFrom(netip.MustParseAddr(fakeIP(i)), cwcluster.ListenPort).String(),
	}}}
	if _, err := patch(ctx, admin, name, managerCrosswire, types.MergePatchType, ann); err != nil {
		return err
	}
	return nil
}

// patch applies body (JSON-encoded) to Node name as manager.
func patch(ctx context.Context, admin kubernetes.Interface, name, manager string, pt types.PatchType, body any, subresource ...string) (*corev1.Node, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	n, err := admin.CoreV1().Nodes().Patch(ctx, name, pt, b, metav1.PatchOptions{FieldManager: manager}, subresource...)
	if err != nil {
		return nil, fmt.Errorf("patch %s as %s: %w", name, manager, err)
	}
	return n, nil
}

func deleteFake(ctx context.Context, admin kubernetes.Interface, i int) error {
	if err := admin.CoreV1().Nodes().Delete(ctx, fakeName(i), metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete %s: %w", fakeName(i), err)
	}
	return nil
}

// createFakes creates fake nodes from..to-1 with a few parallel workers.
func createFakes(ctx context.Context, admin kubernetes.Interface, from, to int) error {
	const workers = 16
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := createFake(ctx, admin, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for i := from; i < to; i++ {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errs:
		return err
	default:
		return nil
	}
}

// setExtraCIDR makes fake node i claim its own CIDR plus extra, through
// crosswire's pod-CIDR annotation: a Node update the agent must apply.
func setExtraCIDR(ctx context.Context, admin kubernetes.Interface, i int, extra netip.Prefix) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"%s,%s"}}}`, controller.AnnotationPodCIDRs, fakeCIDR(i), extra)
	if _, err := admin.CoreV1().Nodes().Patch(ctx, fakeName(i), types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch %s: %w", fakeName(i), err)
	}
	return nil
}
