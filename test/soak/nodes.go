package soak

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/client-go/util/retry"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
	"github.com/crosswire/crosswire/wgtun"
)

const keyAnnotation = controller.AnnotationPublicKey

// join brings the spare node in: built on its first join (a node that did
// not exist when the run began), with a fresh key every time, registered
// as a kubelet would, its agent started and flows both ways to every base
// node's first pod, both families.
func (r *Run) join(ctx context.Context) error {
	if r.spare == nil {
		added, err := r.C.AddNodes(1)
		if err != nil {
			return fmt.Errorf("build the spare node: %w", err)
		}
		r.mu.Lock()
		r.spare = added[0]
		r.mu.Unlock()
	}
	n := r.spare
	if err := removeKey(n); err != nil {
		return err
	}
	k, err := r.CW.PublicKey(n)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.CW.Keys[n.Name] = k
	r.mu.Unlock()
	if err := r.register(ctx, n); err != nil {
		return err
	}
	if err := r.startAgent(n); err != nil {
		return err
	}
	// Its pods talk once its agent is ready: before that nothing on the
	// node can encrypt, the install window docs/design.md describes. The
	// heal still counts from the agent's start.
	if err := cwcluster.Eventually(agentStart+2*RekeyTimeout+healGrace, func() error { return ready(ctx, n) }); err != nil {
		return err
	}
	var flows []*Flow
	for _, b := range r.baseNodes() {
		for _, pair := range [][2]*netcluster.Node{{n, b}, {b, n}} {
			src, dst := pair[0], pair[1]
			for _, fam := range []int{4, 6} {
				ip := dst.Pods[0].IP
				if fam == 6 {
					ip = dst.Pods[0].IP6
				}
				fl, err := startPing(fmt.Sprintf("ping%d %s->%s", fam, src.Name, dst.Name), fmt.Sprintf("ping%d", fam),
					src.Index, dst.Index, src.Pods[0].NS, ip)
				if err != nil {
					return err
				}
				flows = append(flows, fl)
			}
		}
	}
	r.mu.Lock()
	r.spareRun = flows
	r.joined = true
	r.mu.Unlock()
	return nil
}

// leave takes the spare out again: its flows stop first (a Node that is
// gone is no longer crosswire's to encrypt to), then its agent, then its
// Node.
func (r *Run) leave(ctx context.Context) error {
	r.mu.Lock()
	flows := r.spareRun
	r.spareRun = nil
	r.joined = false
	r.mu.Unlock()
	for _, fl := range flows {
		fl.Stop()
	}
	r.mu.Lock()
	r.retired = append(r.retired, flows...)
	r.mu.Unlock()
	// Echo replies still in flight land before the peer disappears.
	time.Sleep(time.Second)
	if err := r.stopAgent(r.spare, syscall.SIGTERM); err != nil {
		return err
	}
	return r.CW.DeleteNode(ctx, r.spare)
}

// canaryName is a Node with no machine behind it whose CIDR annotation
// the soak toggles to see the agents' watches deliver changes.
const canaryName = "soak-canary"

var canaryCIDRs = [2]netip.Prefix{netip.MustParsePrefix("10.244.250.0/24"), netip.MustParsePrefix("10.244.251.0/24")}

// createCanary registers the canary Node with a key, an endpoint no one
// answers and the first CIDR.
func (r *Run) createCanary(ctx context.Context) error {
	k, err := wgtun.GeneratePrivateKey()
	if err != nil {
		return err
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: canaryName, Annotations: map[string]string{
		keyAnnotation:                 k.PublicKey().String(),
		controller.AnnotationEndpoint: "192.168.77.250:51820",
		controller.AnnotationPodCIDRs: canaryCIDRs[0].String(),
	}}}
	_, err = r.CW.Kube.Admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	return err
}

// canaryChange moves the canary to its other CIDR (retrying while the API
// server comes back) and returns the check that every base agent applied
// it.
func (r *Run) canaryChange(ctx context.Context) (func() error, error) {
	r.mu.Lock()
	r.canary ^= 1
	want := canaryCIDRs[r.canary]
	r.mu.Unlock()
	err := cwcluster.Eventually(30*time.Second, func() error {
		return r.patchAnnotations(ctx, canaryName, map[string]string{controller.AnnotationPodCIDRs: want.String()})
	})
	if err != nil {
		return nil, fmt.Errorf("move the canary: %w", err)
	}
	return func() error {
		for _, n := range r.baseNodes() {
			if err := contains(n.NS, want.String(), "nft", "list", "set", "inet", cwcluster.NftTable, "remote4"); err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
		}
		return nil
	}, nil
}

// register creates n's Node as a kubelet would and sets its addresses,
// retrying the status update when the agent's own patch (it publishes its
// key as soon as the Node appears) got in first.
func (r *Run) register(ctx context.Context, n *netcluster.Node) error {
	nodes := r.CW.Kube.Admin.CoreV1().Nodes()
	want := r.CW.APINode(n)
	if _, err := nodes.Create(ctx, want, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node %s: %w", n.Name, err)
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status = want.Status
		_, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func (r *Run) isJoined() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.joined
}
