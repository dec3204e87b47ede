package kubecluster

import (
	"fmt"
	"path/filepath"
)

// containerdConfig is containerd's configuration for a node. Paths are the
// standard ones (/run/containerd, /var/lib/containerd): they are the node's
// own inside its mount namespace.
func (c *Cluster) containerdConfig(n *Node) string {
	return fmt.Sprintf(`version = 3
# No plugins that would share host-wide state between the nodes.
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt"]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins]
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = %[1]q
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = %[2]q
  [plugins."io.containerd.cri.v1.runtime"]
    # Root here may not lower a process's oom_score_adj; without this every
    # sandbox fails to start.
    restrict_oom_score_adj = true
    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
          BinaryName = %[3]q
          SystemdCgroup = false
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = [%[4]q]
      conf_dir = %[5]q
  # Pulls through the transfer service read the same registry hosts.
  [plugins."io.containerd.transfer.v1.local"]
    config_path = %[2]q
`, c.SandboxImage, filepath.Join(n.Dir, "certs.d"), runcBinary, cniBinDir, filepath.Join(n.Dir, "cni"))
}

// kubeletConfig follows the facts in shared/REAL-NODES.md: cgroup v1 with
// the cgroupfs driver under a per-node root, no swap check, no read-only
// port, an empty resolv.conf, and no image garbage collection or eviction
// that the shared disk of one machine could trigger.
func (c *Cluster) kubeletConfig(n *Node) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]s
failSwapOn: false
readOnlyPort: 0
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
resolvConf: %[2]s
podLogsDir: /var/log/pods
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "0%%"
  nodefs.inodesFree: "0%%"
  imagefs.available: "0%%"
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: %[3]s
authorization:
  mode: AlwaysAllow
serializeImagePulls: false
syncFrequency: 10s
nodeStatusUpdateFrequency: 10s
`, n.cgroupRoot, filepath.Join(n.Dir, "resolv.conf"), c.API.CAFile())
}

// proxyConfig runs kube-proxy in the cluster's mode. Conntrack settings are
// left as they are (0): the namespaces share the machine's limits.
func (c *Cluster) proxyConfig(n *Node, kubeconfig string) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %[1]s
mode: %[2]s
clusterCIDR: %[3]s
hostnameOverride: %[4]s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, kubeconfig, c.opts.ProxyMode, podCIDR, n.Name)
}

// cniConfig is the node's bridge network: pods on cbr0 with addresses from
// the node's pod CIDR and no masquerading, so pod addresses cross nodes
// unchanged (as crosswire's marking expects).
func cniConfig(n *Node) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "crosswire-test",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cbr0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %[1]q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %[2]q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, n.PodCIDR, filepath.Join(n.Dir, "cni-ipam"))
}
