// Package netcluster builds a throwaway Kubernetes-like cluster out of
// network namespaces on one machine: an underlay bridge, node namespaces with
// kubenet-style pod bridges and plaintext host-gw routes, pod namespaces, and
// a kube-proxy-like Service DNAT. End-to-end tests run crosswire agents in
// the node namespaces and prove, with captures on the underlay, that pod
// traffic crossing nodes is encrypted.
//
// Everything lives in namespaces whose names start with a per-run prefix, so
// runs in parallel do not collide, and Close removes all of it. A typical
// end-to-end test:
//
//	c := netcluster.New(t, netcluster.Options{})
//	for _, n := range c.Nodes {
//		c.Start(n.NS, "", agentBinary, "--node-name", n.Name, "--state-dir", n.StateDir)
//	}
//	cp := c.StartCapture(t)
//	err := c.Nodes[0].Pods[0].Ping(c.Nodes[1].Pods[0].IP, 3)
//	counts, err := cp.Stop() // want counts.Plaintext == 0, counts.WireGuard > 0
//
// Killing the test binary (go test -timeout, SIGKILL) skips Close; the
// namespaces it leaves carry its prefix and can be removed with
// `ip netns delete`.
package netcluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options shapes a cluster. Zero values pick the defaults.
type Options struct {
	Nodes, PodsPerNode int    // defaults 3 and 2
	Prefix             string // namespace name prefix; default "cw" + 4 random hex digits
	ServiceBackend     [2]int // node index, pod index (1-based); default {2,1}, {1,1} on one node
	// Pods picks the pod networks' families (default IPv4). With IPv6 the
	// nodes also get IPv6 underlay addresses for the host-gw routes.
	Pods Stack
	// Underlay picks the families of the nodes' underlay addresses and so
	// of the WireGuard endpoints (default IPv4, plus IPv6 if pods need it).
	// With IPv6 the underlay has no IPv4 at all: IPv4 pod routes then use
	// IPv6 next hops (RFC 5549), and endpoints are IPv6.
	Underlay Stack
	// UnderlayMTU is the MTU of every link between nodes (default 1500,
	// the veth default). Pods keep 1500.
	UnderlayMTU int
	// DropPacketTooBig drops ICMP "fragmentation needed" and ICMPv6
	// "packet too big" when a node sends or forwards them and on the
	// underlay bridge: the ICMP black hole that breaks path MTU discovery
	// in the field, so only MSS clamping can keep TCP working.
	DropPacketTooBig bool
	// NoPods builds bare nodes: underlay, default route and sysctls, but no
	// pod bridge, pods, host-gw routes or Service rules. A real CNI, route
	// programming and kube-proxy supply those (test/kubecluster).
	NoPods bool
}

// Cluster is a built cluster. Its fields are read-only for callers.
type Cluster struct {
	Prefix     string
	Underlay   string // underlay namespace, holding bridge br0
	Nodes      []*Node
	ServiceVIP netip.AddrPort // 10.96.0.10:80 (tcp and udp), DNATed to BackendAddr
	Backend    *Pod
	// BackendAddr is Backend.IP:8080, where a test serves the Service.
	BackendAddr netip.AddrPort
	Root        string // per-run temp dir, removed by Close
	// PodStack and UnderlayStack are the families in use (Options.Pods,
	// and Options.Underlay widened to what the pods need).
	PodStack, UnderlayStack Stack
	UnderlayMTU             int
	DropPacketTooBig        bool
	NoPods                  bool

	mu       sync.Mutex
	created  []string // namespaces this run created, in creation order
	procs    []*Process
	nextLog  int
	closed   bool
	closeErr error
}

// Node is one node namespace.
//
// The unsuffixed address fields hold the primary family: IPv4 unless the
// network is IPv6-only. The *6 fields hold the IPv6 address when the network
// has IPv6 (equal to the primary one when it is IPv6-only), else are zero.
type Node struct {
	Index       int
	Name        string     // Kubernetes-style node name, "node1"...
	NS          string     //
	UnderlayIP  netip.Addr // on eth0, 192.168.77.(10+Index)/24 (or the IPv6 one)
	UnderlayIP6 netip.Addr // on eth0, fd00:77::(10+Index)/64
	PodCIDR     netip.Prefix
	PodCIDR6    netip.Prefix // fd00:10:244:<Index>::/64
	BridgeIP    netip.Addr   // on cbr0; the pods' default gateway
	BridgeIP6   netip.Addr
	Pods        []*Pod
	StateDir    string
	SocketDir   string
}

// Pod is one pod namespace, attached to its node's cbr0.
type Pod struct {
	Name     string // "node1-pod1"...
	NS       string
	IP       netip.Addr // on the pod's eth0 (primary family)
	IP6      netip.Addr // fd00:10:244:<node>::(9+k) when pods have IPv6
	Node     *Node
	HostVeth string // the veth's node end ("p1"), a port of cbr0
}

// Fixed addressing of every cluster; namespaces keep runs apart, so the
// addresses need not differ between runs.
const (
	UnderlayDev  = "eth0" // node side of the underlay veth
	PodBridge    = "cbr0"
	BackendPort  = 8080
	underlayBase = 10 // node i is 192.168.77.(underlayBase+i)
	podBase      = 9  // pod k is 10.244.i.(podBase+k)
)

var (
	// serviceVIP is the ClusterIP:port every cluster DNATs to its backend.
	serviceVIP = netip.MustParseAddrPort("10.96.0.10:80")
	// podNetV4 and podNetV6 cover every pod CIDR a cluster may use; captures
	// count any packet to or from them as plaintext.
	podNetV4 = netip.MustParsePrefix("10.244.0.0/16")
	podNetV6 = netip.MustParsePrefix("fd00:10:244::/48")
)

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)

// PodNets returns the prefixes whose traffic must never cross the underlay in
// clear.
func (c *Cluster) PodNets() []netip.Prefix {
	return []netip.Prefix{podNetV4, podNetV6}
}

// New builds a cluster and registers Close with t.Cleanup. A build failure
// fails the test after removing whatever was already created.
func New(t testing.TB, o Options) *Cluster {
	t.Helper()
	start := time.Now()
	c, err := layout(o)
	if err != nil {
		t.Fatalf("netcluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("netcluster: close %s: %v", c.Prefix, err)
		}
	})
	if err := c.build(); err != nil {
		t.Fatalf("netcluster: build %s: %v", c.Prefix, err)
	}
	t.Logf("netcluster: %s: %d nodes x %d pods built in %v (root %s)",
		c.Prefix, len(c.Nodes), len(c.Nodes[0].Pods), time.Since(start).Round(time.Millisecond), c.Root)
	return c
}

// layout computes names and addresses without touching the kernel.
func layout(o Options) (*Cluster, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.PodsPerNode == 0 && !o.NoPods {
		o.PodsPerNode = 2
	}
	if o.ServiceBackend == [2]int{} && !o.NoPods {
		// A remote backend by default, since Service traffic crossing
		// nodes is what crosswire must encrypt.
		o.ServiceBackend = [2]int{min(2, o.Nodes), 1}
	}
	if o.Nodes < 1 || o.Nodes > 200 {
		return nil, fmt.Errorf("nodes %d out of range 1..200", o.Nodes)
	}
	if o.NoPods && o.PodsPerNode != 0 {
		return nil, fmt.Errorf("NoPods with %d pods per node", o.PodsPerNode)
	}
	if !o.NoPods && (o.PodsPerNode < 1 || o.PodsPerNode > 200) {
		return nil, fmt.Errorf("pods per node %d out of range 1..200", o.PodsPerNode)
	}
	bn, bp := o.ServiceBackend[0], o.ServiceBackend[1]
	if !o.NoPods && (bn < 1 || bn > o.Nodes || bp < 1 || bp > o.PodsPerNode) {
		return nil, fmt.Errorf("service backend node %d pod %d outside the cluster", bn, bp)
	}
	if !o.Pods.valid() || !o.Underlay.valid() {
		return nil, fmt.Errorf("stacks: pods %v, underlay %v", o.Pods, o.Underlay)
	}
	underlay := o.Underlay
	if o.Pods.Has6() && underlay == IPv4 {
		underlay = DualStack // IPv6 host-gw routes need IPv6 next hops
	}
	if o.UnderlayMTU == 0 {
		o.UnderlayMTU = 1500
	}
	if o.UnderlayMTU < 1280 || o.UnderlayMTU > 9000 {
		return nil, fmt.Errorf("underlay MTU %d out of range 1280..9000", o.UnderlayMTU)
	}
	prefix := o.Prefix
	if prefix == "" {
		var err error
		if prefix, err = randomPrefix(); err != nil {
			return nil, err
		}
	}
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("prefix %q: want %s", prefix, prefixRE)
	}

	c := &Cluster{
		Prefix:     prefix,
		Underlay:   prefix + "-ul",
		ServiceVIP: serviceVIP,

		PodStack:         o.Pods,
		UnderlayStack:    underlay,
		UnderlayMTU:      o.UnderlayMTU,
		DropPacketTooBig: o.DropPacketTooBig,
		NoPods:           o.NoPods,
	}
	for i := 1; i <= o.Nodes; i++ {
		n := &Node{
			Index: i,
			Name:  "node" + strconv.Itoa(i),
			NS:    fmt.Sprintf("%s-n%d", prefix, i),
		}
		if underlay.Has6() {
			n.UnderlayIP6, n.UnderlayIP = underlayIP6(i), underlayIP6(i)
		}
		if underlay.Has4() {
			n.UnderlayIP = netip.AddrFrom4([4]byte{192, 168, 77, byte(underlayBase + i)})
		}
		if o.Pods.Has6() {
			n.PodCIDR6, n.PodCIDR = podCIDR6(i), podCIDR6(i)
			n.BridgeIP6, n.BridgeIP = hostIn6(n.PodCIDR6, 1), hostIn6(n.PodCIDR6, 1)
		}
		if o.Pods.Has4() {
			n.PodCIDR = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24)
			n.BridgeIP = netip.AddrFrom4([4]byte{10, 244, byte(i), 1})
		}
		for k := 1; k <= o.PodsPerNode; k++ {
			p := &Pod{
				Name:     fmt.Sprintf("%s-pod%d", n.Name, k),
				NS:       fmt.Sprintf("%s-n%dp%d", prefix, i, k),
				Node:     n,
				HostVeth: "p" + strconv.Itoa(k),
			}
			if o.Pods.Has6() {
				p.IP6, p.IP = hostIn6(n.PodCIDR6, podBase+k), hostIn6(n.PodCIDR6, podBase+k)
			}
			if o.Pods.Has4() {
				p.IP = netip.AddrFrom4([4]byte{10, 244, byte(i), byte(podBase + k)})
			}
			n.Pods = append(n.Pods, p)
		}
		c.Nodes = append(c.Nodes, n)
	}
	if !o.NoPods {
		c.Backend = c.Nodes[bn-1].Pods[bp-1]
		c.BackendAddr = netip.AddrPortFrom(c.Backend.IP, BackendPort)
	}
	return c, nil
}

// randomPrefix avoids prefixes that already name a namespace, e.g. one left
// behind by a crashed run, since build refuses to reuse them.
func randomPrefix() (string, error) {
	for range 16 {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("random prefix: %w", err)
		}
		p := "cw" + hex.EncodeToString(b[:])
		stale, err := filepath.Glob(filepath.Join(netnsRunDir, p+"-*"))
		if err == nil && len(stale) == 0 {
			return p, nil
		}
	}
	return "", errors.New("random prefix: no free prefix found")
}

// Namespaces lists every namespace of the cluster: underlay, nodes, pods.
func (c *Cluster) Namespaces() []string {
	names := []string{c.Underlay}
	for _, n := range c.Nodes {
		names = append(names, n.NS)
	}
	for _, n := range c.Nodes {
		for _, p := range n.Pods {
			names = append(names, p.NS)
		}
	}
	return names
}

// NodeByName returns the node called name ("node1"), or nil.
func (c *Cluster) NodeByName(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Pods returns every pod, node by node.
func (c *Cluster) Pods() []*Pod {
	var ps []*Pod
	for _, n := range c.Nodes {
		ps = append(ps, n.Pods...)
	}
	return ps
}

// Close kills every process the cluster started, deletes every namespace it
// created and removes Root. It is safe after a partial build and idempotent:
// later calls return the first call's result.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.closeErr
	}
	c.closed = true
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].Kill()
	}
	for i := len(c.created) - 1; i >= 0; i-- {
		ns := c.created[i]
		// A namespace outlives its name while a process is inside it, so
		// anything that escaped tracking (a child that left its process
		// group, a stray Exec) is killed before the name goes.
		if _, err := os.Stat(filepath.Join(netnsRunDir, ns)); errors.Is(err, os.ErrNotExist) {
			continue // removed already, e.g. by a Teardown of a cluster built on this one
		}
		if err := killStragglers(ns); err != nil {
			errs = append(errs, err)
		}
		if _, err := run(nil, "ip", "netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
	}
	c.created = nil
	if c.Root != "" {
		if err := os.RemoveAll(c.Root); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", c.Root, err))
		}
	}
	c.closeErr = errors.Join(errs...)
	return c.closeErr
}

// KillNamespace SIGKILLs every process inside the named namespace but this
// test binary and waits until they are dead; a namespace that does not
// exist holds nothing. For harnesses that stop a node's processes while
// keeping its namespace (test/kubecluster's node reboot and teardown).
func KillNamespace(ns string) error {
	if _, err := os.Stat(filepath.Join(netnsRunDir, ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return killStragglers(ns)
}

// killStragglers SIGKILLs the processes inside ns, never this test binary,
// one of whose threads may be visiting ns through Do, and waits until they
// are dead, so that "nothing is left" holds when Close returns.
func killStragglers(ns string) error {
	out, err := run(nil, "ip", "netns", "pids", ns)
	if err != nil {
		return err
	}
	self := os.Getpid()
	var pids []int
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == self || pid <= 1 {
			continue
		}
		if err := killPID(pid); err != nil {
			return fmt.Errorf("kill straggler %d in %s: %w", pid, ns, err)
		}
		pids = append(pids, pid)
	}
	deadline := time.Now().Add(stragglerTimeout)
	for _, pid := range pids {
		for !dead(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("straggler %d in %s survives SIGKILL", pid, ns)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

const stragglerTimeout = 5 * time.Second
