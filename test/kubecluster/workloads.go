package kubecluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/crosswire/crosswire/test/netcluster"
)

// Workload traffic: namespace, echo port, and the Service in front of one
// pod.
const (
	AppsNamespace = "apps"
	EchoPort      = 8080
	echoService   = "echo"
)

// Workload is a pod that traffic is sent from and to: its namespace name
// (for netcluster's helpers) and address.
type Workload struct {
	Name, Node, NS string
	IP             netip.Addr
	echo           *netcluster.EchoServer
}

// Workloads are two pods per node (image running `crosswire pause`,
// unprivileged) and a ClusterIP Service whose one backend is the first pod
// of the second node. Each pod serves TCP echo on EchoPort from this
// process, inside the pod's namespace.
type Workloads struct {
	Pods       []*Workload
	ServiceVIP netip.AddrPort
	c          *Cluster
}

// StartWorkloads creates the pods and the Service and waits until every
// pod runs and serves.
func (c *Cluster) StartWorkloads(ctx context.Context, image string) (*Workloads, error) {
	cs := c.Client()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: AppsNamespace}}, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	backend := c.Nodes[min(1, len(c.Nodes)-1)].Name + "-a"
	var names []string
	for _, n := range c.Nodes {
		for _, s := range []string{"a", "b"} {
			name := n.Name + "-" + s
			names = append(names, name)
			labels := map[string]string{"app": "workload"}
			if name == backend {
				labels["role"] = "echo"
			}
			if _, err := cs.CoreV1().Pods(AppsNamespace).Create(ctx, workloadPod(name, n.Name, image, labels), metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("pod %s: %w", name, err)
			}
		}
	}
	svc, err := cs.CoreV1().Services(AppsNamespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: echoService},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"role": "echo"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(EchoPort), Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	w := &Workloads{ServiceVIP: netip.AddrPortFrom(netip.MustParseAddr(svc.Spec.ClusterIP), 80), c: c}
	for _, name := range names {
		p, err := w.adopt(ctx, name)
		if err != nil {
			w.Close()
			return nil, err
		}
		w.Pods = append(w.Pods, p)
	}
	return w, nil
}

// adopt waits until the pod runs, names its network namespace and serves
// TCP echo in it.
func (w *Workloads) adopt(ctx context.Context, name string) (*Workload, error) {
	pod, err := w.c.WaitPodRunning(ctx, AppsNamespace, name)
	if err != nil {
		return nil, err
	}
	ns, err := w.c.PodNS(pod)
	if err != nil {
		return nil, err
	}
	ip := netip.MustParseAddr(pod.Status.PodIP)
	echo, err := netcluster.OpenEchoServer(ns, netip.AddrPortFrom(ip, EchoPort))
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", name, err)
	}
	return &Workload{Name: name, Node: pod.Spec.NodeName, NS: ns, IP: ip, echo: echo}, nil
}

// Readopt finds the pods of node again after their sandboxes were
// recreated (a node reboot): new namespaces, maybe new addresses.
func (w *Workloads) Readopt(ctx context.Context, node string) error {
	for i, p := range w.Pods {
		if p.Node != node {
			continue
		}
		p.echo.Close()
		np, err := w.adopt(ctx, p.Name)
		if err != nil {
			return err
		}
		w.Pods[i] = np
	}
	return nil
}

// Close stops the echo servers.
func (w *Workloads) Close() {
	for _, p := range w.Pods {
		p.echo.Close()
	}
}

func workloadPod(name, node, image string, labels map[string]string) *corev1.Pod {
	uid, grace, yes, no := int64(65535), int64(1), true, false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:    "pause",
				Image:   image,
				Command: []string{"/usr/local/bin/crosswire", "pause"},
				SecurityContext: &corev1.SecurityContext{
					RunAsUser:                &uid,
					RunAsNonRoot:             &yes,
					AllowPrivilegeEscalation: &no,
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// WaitPodRunning waits until the pod runs and has an address.
func (c *Cluster) WaitPodRunning(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	cs := c.Client()
	var last string
	for {
		pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "" {
			return pod, nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("phase %s, conditions %v, container statuses %v", pod.Status.Phase, pod.Status.Conditions, pod.Status.ContainerStatuses)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return nil, fmt.Errorf("pod %s/%s not running: %s", ns, name, last)
		}
	}
}

// CrossNodePairs are the ordered pairs of pods on different nodes.
func (w *Workloads) CrossNodePairs() [][2]*Workload {
	var pairs [][2]*Workload
	for _, a := range w.Pods {
		for _, b := range w.Pods {
			if a.Node != b.Node {
				pairs = append(pairs, [2]*Workload{a, b})
			}
		}
	}
	return pairs
}

// Exercise sends pings and TCP echoes between every cross-node pair and
// through the Service VIP from every pod; it returns every lost reply.
func (w *Workloads) Exercise() error {
	var errs []error
	for _, p := range w.CrossNodePairs() {
		if err := netcluster.Ping(p[0].NS, p[1].IP, 2); err != nil {
			errs = append(errs, fmt.Errorf("ping %s -> %s: %w", p[0].Name, p[1].Name, err))
		}
		if err := echo(p[0].NS, netip.AddrPortFrom(p[1].IP, EchoPort), p[0].Name+" to "+p[1].Name); err != nil {
			errs = append(errs, fmt.Errorf("TCP %s -> %s: %w", p[0].Name, p[1].Name, err))
		}
	}
	for _, p := range w.Pods {
		if err := echo(p.NS, w.ServiceVIP, p.Name+" to the Service"); err != nil {
			errs = append(errs, fmt.Errorf("TCP %s -> Service %s: %w", p.Name, w.ServiceVIP, err))
		}
	}
	return errors.Join(errs...)
}

func echo(ns string, to netip.AddrPort, msg string) error {
	got, err := netcluster.DialTCP(ns, to, []byte(msg), 5*time.Second)
	if err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, sent %q", got, msg)
	}
	return nil
}

// ExerciseUntil repeats Exercise until every flow answers or timeout
// passes: right after agents start, a peer may not know the other's key
// yet and WireGuard retries its first handshake only after 5 s. It returns
// how long it took.
func (w *Workloads) ExerciseUntil(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	err := w.Exercise()
	for err != nil && time.Since(start) < timeout {
		time.Sleep(500 * time.Millisecond)
		err = w.Exercise()
	}
	return time.Since(start), err
}
