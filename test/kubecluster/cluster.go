package kubecluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/crosswire/crosswire/build/ociimage"
	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/netcluster"
)

// Options shapes a cluster.
type Options struct {
	Nodes int // default 3
	// ProxyMode is kube-proxy's mode: "nftables" (default) or "iptables".
	ProxyMode string
	// Sandbox is the pod sandbox ("pause") image every node's containerd
	// runs, pushed to the cluster's registry before any node starts: the
	// machine reaches no public registry.
	Sandbox v1.ImageIndex
	Prefix  string // namespace prefix; default random
	// Detached lets the cluster outlive the calling process (the demo);
	// Teardown removes it from any process.
	Detached bool
	// Logf reports progress; nil is silent.
	Logf func(format string, args ...any)
}

// Cluster is a running real cluster.
type Cluster struct {
	Net   *netcluster.Cluster
	API   *apiserver.Server
	Nodes []*Node
	// Root holds every file of the cluster (Net.Root/kube).
	Root string
	// Kubeconfig is the admin's kubeconfig, for kubectl and helm run in
	// the underlay namespace (Kubectl, Helm).
	Kubeconfig   string
	SandboxImage string

	opts                                   Options
	tools                                  Tools
	mountRoot                              string
	registry, controllerManager, scheduler *netcluster.Process
}

// New builds a cluster for a test and waits until every node is Ready.
// Everything is removed when the test ends; the host guard is checked
// before any node starts and again then.
func New(t testing.TB, o Options) *Cluster {
	t.Helper()
	guard, err := NewHostGuard()
	if err != nil {
		t.Fatalf("kubecluster: %v", err)
	}
	o.Logf = t.Logf
	c, err := launch(o, guard)
	if c != nil {
		t.Cleanup(func() {
			if t.Failed() {
				c.logTails(t)
			}
			if err := c.Close(); err != nil {
				t.Errorf("kubecluster: close: %v", err)
			}
			if err := guard.Check(); err != nil {
				t.Errorf("kubecluster: at the end: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("kubecluster: %v", err)
	}
	return c
}

// Launch is New for programs: no testing.TB; with Options.Detached the
// cluster stays up after this process exits, until Teardown. On error it
// removes what it built.
func Launch(o Options) (*Cluster, error) {
	guard, err := NewHostGuard()
	if err != nil {
		return nil, err
	}
	c, err := launch(o, guard)
	if err != nil && c != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, err
}

// launch builds the cluster. On error it returns what it built so far (or
// nil), for the caller to Close.
func launch(o Options, guard *HostGuard) (*Cluster, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.ProxyMode == "" {
		o.ProxyMode = "nftables"
	}
	if o.ProxyMode != "nftables" && o.ProxyMode != "iptables" {
		return nil, fmt.Errorf("kube-proxy mode %q: want nftables or iptables", o.ProxyMode)
	}
	if o.Sandbox == nil {
		return nil, errors.New("Options.Sandbox is required")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	tools, err := FindTools()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	net, err := netcluster.Build(netcluster.Options{Nodes: o.Nodes, NoPods: true, Prefix: o.Prefix})
	if err != nil {
		return nil, err
	}
	c := &Cluster{Net: net, opts: o, tools: tools, Root: filepath.Join(net.Root, "kube")}
	c.mountRoot = filepath.Join(c.Root, "mnt")
	if err := c.start(guard); err != nil {
		return c, err
	}
	o.Logf("kubecluster: %s: %d real nodes Ready (kube-proxy %s) in %v", net.Prefix, len(c.Nodes), o.ProxyMode,
		time.Since(start).Round(time.Millisecond))
	return c, nil
}

func (c *Cluster) start(guard *HostGuard) error {
	if err := mountRoot(c.mountRoot); err != nil {
		return err
	}
	cp, err := c.Net.AddControlPlane()
	if err != nil {
		return err
	}
	c.API, err = apiserver.Launch(apiserver.LaunchOptions{
		Options:  apiserver.Options{BindAddress: cp, NetNS: c.Net.Underlay, FullCluster: true},
		Dir:      filepath.Join(c.Root, "apiserver"),
		Detached: c.opts.Detached,
	})
	if err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.Root, "admin.kubeconfig")
	if err := c.API.WriteKubeconfig(c.API.Admin, c.Kubeconfig); err != nil {
		return err
	}
	if err := c.startRegistry(); err != nil {
		return err
	}
	c.SandboxImage = c.RegistryHost() + "/crosswire-test/sandbox:1"
	if _, err := c.Push(c.SandboxImage, c.opts.Sandbox); err != nil {
		return fmt.Errorf("sandbox image: %w", err)
	}
	if err := c.startControlPlane(); err != nil {
		return err
	}
	// The rule that comes first: checked before any node could start a pod.
	if err := guard.Check(); err != nil {
		return fmt.Errorf("before the nodes start: %w", err)
	}
	for _, n := range c.Net.Nodes {
		kn := &Node{Node: n}
		c.Nodes = append(c.Nodes, kn)
		if err := c.setupNode(kn); err != nil {
			return err
		}
		if err := c.startNode(kn); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return c.wireNodes(ctx)
}

// Client is an admin clientset.
func (c *Cluster) Client() kubernetes.Interface {
	cs, err := kubernetes.NewForConfig(c.API.Admin)
	if err != nil {
		panic(fmt.Sprintf("admin clientset: %v", err)) // only on a malformed config, which launch built
	}
	return cs
}

// Push writes an image index to the cluster's registry under ref
// (RegistryHost()/repo:tag) and returns ref pinned by digest.
func (c *Cluster) Push(ref string, idx v1.ImageIndex) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := ociimage.Push(ctx, idx, ref, ociimage.PushOptions{Insecure: true, Transport: c.RegistryTransport()})
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// Kubectl runs kubectl as the admin inside the underlay namespace, where
// the API server is reachable.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	return netcluster.Exec(c.Net.Underlay, append([]string{c.tools.Kubectl, "--kubeconfig", c.Kubeconfig}, args...)...)
}

// Helm runs helm as the admin inside the underlay namespace, with its
// caches under Root.
func (c *Cluster) Helm(args ...string) (string, error) {
	home := filepath.Join(c.Root, "helm")
	return netcluster.Exec(c.Net.Underlay, append([]string{"env",
		"HELM_CACHE_HOME=" + home + "/cache", "HELM_CONFIG_HOME=" + home + "/config", "HELM_DATA_HOME=" + home + "/data",
		c.tools.Helm, "--kubeconfig", c.Kubeconfig}, args...)...)
}

// Close removes the cluster: Teardown, after stopping the processes this
// process started.
func (c *Cluster) Close() error {
	for _, n := range c.Nodes {
		for _, p := range []*netcluster.Process{n.proxy, n.kubelet, n.containerd} {
			if p != nil {
				p.Kill()
			}
		}
	}
	if c.API != nil {
		c.API.Stop()
	}
	return errors.Join(Teardown(c.Net.Prefix, c.Net.Root), c.Net.Close())
}

// Teardown removes what a cluster with this prefix and netcluster root
// left, from any process: every container (by its node's cgroup root), the
// control plane, every process in the cluster's namespaces, the nodes'
// mount namespaces and cgroups, the namespaces (pod namespace names
// included) and root. Missing pieces are fine.
func Teardown(prefix, root string) error {
	var errs []error
	// The nodes are known by their cgroup roots, even without root.
	roots, err := filepath.Glob(filepath.Join(cgroupFS, "pids", prefix+"-node*"))
	if err != nil {
		return err
	}
	var nodes []string
	for _, r := range roots {
		nodes = append(nodes, strings.TrimPrefix(filepath.Base(r), prefix+"-"))
	}
	for _, n := range nodes {
		// The node's own processes first, so no kubelet restarts the
		// containers killed next.
		var i int
		if _, err := fmt.Sscanf(n, "node%d", &i); err == nil {
			errs = append(errs, netcluster.KillNamespace(fmt.Sprintf("%s-n%d", prefix, i)))
		}
		errs = append(errs, killCgroup("/"+prefix+"-"+n))
	}
	if root != "" {
		kube := filepath.Join(root, "kube")
		_, err = apiserver.StopDir(filepath.Join(kube, "apiserver"))
		errs = append(errs, err)
		mnt := filepath.Join(kube, "mnt")
		if entries, err := os.ReadDir(mnt); err == nil {
			for _, e := range entries {
				errs = append(errs, unmount(filepath.Join(mnt, e.Name())))
			}
		}
		errs = append(errs, unmount(mnt))
	}
	for _, n := range nodes {
		errs = append(errs, removeCgroupRoot("/"+prefix+"-"+n))
	}
	// Kills everything left in the cluster's namespaces (kube-proxy, the
	// registry, the controllers, etcd and kube-apiserver if root was
	// unknown), deletes them, pod namespace names included, and root.
	_, err = netcluster.Remove(prefix, root)
	return errors.Join(append(errs, err)...)
}

// logTails logs the end of every component's log, for a failed test.
func (c *Cluster) logTails(t testing.TB) {
	for _, p := range []*netcluster.Process{c.controllerManager, c.scheduler, c.registry} {
		if p != nil {
			t.Logf("--- %s:\n%s", p, tail(p.Log(), 15))
		}
	}
	for _, n := range c.Nodes {
		for _, p := range []*netcluster.Process{n.containerd, n.kubelet, n.proxy} {
			if p != nil {
				t.Logf("--- %s %s:\n%s", n.Name, filepath.Base(p.LogPath), tail(p.Log(), 25))
			}
		}
	}
	if c.API != nil {
		t.Logf("--- kube-apiserver:\n%s", tail(readFile(filepath.Join(c.API.Dir, "kube-apiserver.log")), 15))
	}
}

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// KubectlPath is the kubectl binary Kubectl runs.
func (c *Cluster) KubectlPath() string { return c.tools.Kubectl }
