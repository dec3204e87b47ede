// Package kubecluster runs a real Kubernetes cluster on one machine for
// end-to-end tests of crosswire as a workload: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler in the underlay namespace of a
// test/netcluster cluster, a registry (distribution) beside them, and per
// node a containerd (with runc and the CNI bridge plugin), a kubelet and a
// kube-proxy, all built from Go modules or taken from Debian.
//
// Each node is a network namespace with its own mount namespace: nodes on
// one machine share a filesystem, so /run, /var/lib and /var/log are
// per-node directories inside it (the chart's hostPaths, the node's key,
// the kubelet's and containerd's state), and a per-node cgroup root keeps
// the nodes' pods apart.
//
// Nothing leaves the machine: the underlay is a bridge in a namespace of
// its own with no link to the host's namespace, nodes' default routes point
// at an address nobody answers, pods get an empty resolv.conf, and a guard
// checks before any pod starts and again at the end that the host's
// namespace gained no link and no route towards the cluster.
package kubecluster
