package kubecluster

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/crosswire/crosswire/test/netcluster"
)

// Node is one real node: a netcluster node namespace with its own mount
// namespace, cgroup root, containerd, kubelet and kube-proxy.
type Node struct {
	*netcluster.Node
	// Dir holds the node's configuration and, bound into its mount
	// namespace, its /run, /var/lib and /var/log (Dir/run is the node's
	// /run: its crosswire status socket is Dir/run/crosswire/status.sock).
	Dir string
	// MountNS pins the node's mount namespace, for nsenter --mount.
	MountNS string
	// PodCIDR is what the controller-manager allocated to the node.
	PodCIDR netip.Prefix

	cgroupRoot                 string
	containerd, kubelet, proxy *netcluster.Process
}

// HostPath is where the test (in the host's mount namespace) finds path as
// the node sees it, e.g. /var/lib/crosswire/private.key.
func (n *Node) HostPath(path string) string {
	for _, b := range nodeBinds {
		if path == b || strings.HasPrefix(path, b+"/") {
			return filepath.Join(n.Dir, strings.TrimPrefix(path, "/"))
		}
	}
	if strings.HasPrefix(path, "/var/run/") {
		return n.HostPath("/run/" + strings.TrimPrefix(path, "/var/run/"))
	}
	return path
}

// nsenter is the prefix that runs a command inside the node, as its
// kubelet and containerd run.
func (n *Node) nsenter() []string {
	return []string{"nsenter", "--net=/var/run/netns/" + n.NS, "--mount=" + n.MountNS, "--"}
}

// Exec runs a command inside the node's network and mount namespaces.
func (n *Node) Exec(args ...string) (string, error) {
	return output(append(n.nsenter(), args...)...)
}

// setupNode creates the node's directories, mount namespace and cgroup
// root and writes its configuration files.
func (c *Cluster) setupNode(n *Node) error {
	n.Dir = filepath.Join(c.Root, n.Name)
	n.MountNS = filepath.Join(c.mountRoot, n.Name)
	n.cgroupRoot = "/" + c.Net.Prefix + "-" + n.Name
	if err := os.MkdirAll(n.Dir, 0o700); err != nil {
		return fmt.Errorf("%s dir: %w", n.Name, err)
	}
	if err := newMountNS(n.MountNS, n.Dir); err != nil {
		return fmt.Errorf("%s mount namespace: %w", n.Name, err)
	}
	if err := createCgroupRoot(n.cgroupRoot); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	if err := c.writeKubeconfig(filepath.Join(n.Dir, "kubelet.kubeconfig"), "system:node:"+n.Name, "system:nodes"); err != nil {
		return err
	}
	proxy := filepath.Join(n.Dir, "kube-proxy.kubeconfig")
	if err := c.writeKubeconfig(proxy, "system:kube-proxy"); err != nil {
		return err
	}
	files := map[string]string{
		"containerd.toml": c.containerdConfig(n),
		"kubelet.yaml":    c.kubeletConfig(n),
		"kube-proxy.yaml": c.proxyConfig(n, proxy),
		"resolv.conf":     "", // pods resolve nothing: no name may lead off the machine
		"certs.d/" + registryAddr.String() + "/hosts.toml": fmt.Sprintf("server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", registryAddr),
	}
	for name, body := range files {
		p := filepath.Join(n.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return os.MkdirAll(filepath.Join(n.Dir, "cni"), 0o755)
}

// startNode starts containerd, the kubelet and kube-proxy inside the node.
func (c *Cluster) startNode(n *Node) error {
	path := "PATH=" + c.tools.ContainerdDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	var err error
	n.containerd, err = c.Net.StartCommand(n.NS, c.nodeLog(n, "containerd"), append(n.nsenter(),
		"env", path, c.tools.Containerd, "--config", filepath.Join(n.Dir, "containerd.toml"))...)
	if err != nil {
		return fmt.Errorf("%s containerd: %w", n.Name, err)
	}
	// The kubelet exits at once when the runtime does not answer yet.
	if err := waitSocket(n.HostPath("/run/containerd/containerd.sock"), 30*time.Second, n.containerd); err != nil {
		return fmt.Errorf("%s containerd: %w", n.Name, err)
	}
	n.kubelet, err = c.Net.StartCommand(n.NS, c.nodeLog(n, "kubelet"), append(n.nsenter(),
		"env", path, c.tools.Kubelet,
		"--config="+filepath.Join(n.Dir, "kubelet.yaml"),
		"--kubeconfig="+filepath.Join(n.Dir, "kubelet.kubeconfig"),
		"--hostname-override="+n.Name,
		"--node-ip="+n.UnderlayIP.String(),
		"--v=1",
	)...)
	if err != nil {
		return fmt.Errorf("%s kubelet: %w", n.Name, err)
	}
	n.proxy, err = c.Net.StartCommand(n.NS, c.nodeLog(n, "kube-proxy"), append(n.nsenter(),
		c.tools.Proxy, "--config="+filepath.Join(n.Dir, "kube-proxy.yaml"), "--v=1")...)
	if err != nil {
		return fmt.Errorf("%s kube-proxy: %w", n.Name, err)
	}
	return nil
}

func (c *Cluster) nodeLog(n *Node, name string) string {
	return filepath.Join(n.Dir, name+".log")
}

// stopNode kills everything running on the node: kube-proxy, the kubelet,
// containerd, its shims and every container (found by cgroup, since pod
// processes live in their own network namespaces).
func (c *Cluster) stopNode(n *Node) error {
	for _, p := range []*netcluster.Process{n.proxy, n.kubelet, n.containerd} {
		if p != nil {
			p.Kill()
		}
	}
	if err := killCgroup(n.cgroupRoot); err != nil {
		return err
	}
	// The shims left containerd's process group; they are in the node's
	// network namespace.
	return netcluster.KillNamespace(n.NS)
}

// RebootNode kills the node's kubelet, containerd and every container on it
// (the crosswire agent among them) and starts the node again, as after a
// crash: the kernel's network state stays, as the key on disk does.
func (c *Cluster) RebootNode(n *Node) error {
	if err := c.stopNode(n); err != nil {
		return err
	}
	return c.startNode(n)
}

// waitSocket waits until a unix socket accepts connections (a stale file
// from before a restart does not), or p exits.
func waitSocket(path string, timeout time.Duration, p *netcluster.Process) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("exited before serving %s; log:\n%s", path, tail(p.Log(), 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
