package netcluster

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Build builds a cluster outside a test, for the demo: it stays up after
// this process exits (its processes run in their own process groups) until
// Teardown, or Close from the same process, removes it.
func Build(o Options) (*Cluster, error) {
	c, err := layout(o)
	if err != nil {
		return nil, err
	}
	if err := c.build(); err != nil {
		return nil, errors.Join(fmt.Errorf("build %s: %w", c.Prefix, err), c.Close())
	}
	return c, nil
}

// Teardown removes what an earlier process's Build left: every process in,
// and every namespace named, prefix-*, then root. Missing pieces are fine.
func Teardown(prefix, root string) error {
	_, err := Remove(prefix, root)
	return err
}

// Removed is what Remove found and took away.
type Removed struct {
	Namespaces []string // deleted, in name order
	Pids       []int    // processes killed inside them
	Root       bool     // root existed and was removed
}

// Remove is Teardown reporting what it removed.
func Remove(prefix, root string) (Removed, error) {
	var r Removed
	if !prefixRE.MatchString(prefix) {
		return r, fmt.Errorf("teardown: bad prefix %q", prefix)
	}
	names, err := filepath.Glob(filepath.Join(netnsRunDir, prefix+"-*"))
	if err != nil {
		return r, fmt.Errorf("teardown: %w", err)
	}
	var errs []error
	for _, path := range names {
		ns := filepath.Base(path)
		if !strings.HasPrefix(ns, prefix+"-") {
			continue
		}
		if out, err := run(nil, "ip", "netns", "pids", ns); err == nil {
			for _, f := range strings.Fields(out) {
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					r.Pids = append(r.Pids, pid)
				}
			}
		}
		if err := killStragglers(ns); err != nil {
			errs = append(errs, err)
		}
		if _, err := run(nil, "ip", "netns", "delete", ns); err != nil {
			errs = append(errs, err)
			continue
		}
		r.Namespaces = append(r.Namespaces, ns)
	}
	if root != "" {
		if _, err := os.Stat(root); err == nil {
			r.Root = true
		}
		if err := os.RemoveAll(root); err != nil {
			errs = append(errs, fmt.Errorf("teardown: remove %s: %w", root, err))
		}
	}
	return r, errors.Join(errs...)
}

// Reopen returns the cluster an earlier process built with o (the same
// Options, Prefix included) and whose Root is root, without touching the
// kernel, so a later command can address it (the demo's add-node). It
// owns nothing: Close removes only what AddNodes creates through it;
// Teardown removes the whole cluster.
func Reopen(o Options, root string) (*Cluster, error) {
	if o.Prefix == "" {
		return nil, errors.New("reopen: the prefix is required")
	}
	c, err := layout(o)
	if err != nil {
		return nil, err
	}
	for _, ns := range c.Namespaces() {
		if _, err := os.Stat(filepath.Join(netnsRunDir, ns)); err != nil {
			return nil, fmt.Errorf("reopen %s: namespace %s: %w", c.Prefix, ns, err)
		}
	}
	c.Root = root
	for _, n := range c.Nodes {
		c.nodeDirs(n)
	}
	// Log and capture files are numbered from nextLog and every number
	// used so far made at least one entry in root: start past them all,
	// so no earlier run's file is reused (a capture would take an old
	// "listening on" for its own).
	if entries, err := os.ReadDir(root); err == nil {
		c.nextLog = len(entries)
	}
	return c, nil
}

// nodeDirs sets n's directories under Root (as build does).
func (c *Cluster) nodeDirs(n *Node) {
	n.StateDir = filepath.Join(c.Root, n.Name, "state")
	n.SocketDir = filepath.Join(c.Root, n.Name, "run")
}

// AddNodes grows the cluster by count nodes shaped like the others (pods
// per node, families, MTU): their namespaces, underlay ports, pod networks,
// Service DNAT, and host-gw routes in both directions. It returns the new
// nodes, also appended to Nodes; agents on them are the caller's. On error,
// Close (or Teardown) removes the partial nodes with the rest.
func (c *Cluster) AddNodes(count int) ([]*Node, error) {
	if count < 1 || len(c.Nodes) == 0 {
		return nil, fmt.Errorf("add %d nodes to a cluster of %d", count, len(c.Nodes))
	}
	// The layout of the grown cluster names and addresses the new nodes
	// exactly as Build would have.
	o := Options{
		Nodes: len(c.Nodes) + count, PodsPerNode: len(c.Nodes[0].Pods), Prefix: c.Prefix,
		Pods: c.PodStack, Underlay: c.UnderlayStack, UnderlayMTU: c.UnderlayMTU,
		DropPacketTooBig: c.DropPacketTooBig, NoPods: c.NoPods,
	}
	if c.Backend != nil {
		backendPod := 1
		for i, p := range c.Backend.Node.Pods {
			if p == c.Backend {
				backendPod = i + 1
			}
		}
		o.ServiceBackend = [2]int{c.Backend.Node.Index, backendPod}
	}
	grown, err := layout(o)
	if err != nil {
		return nil, err
	}
	added := grown.Nodes[len(c.Nodes):]
	old := c.Nodes
	c.Nodes = append(c.Nodes, added...)
	for _, n := range added {
		if err := c.buildNode(n); err != nil {
			return nil, fmt.Errorf("add %s: %w", n.Name, err)
		}
	}
	for _, m := range old {
		var cmds []string
		for _, n := range added {
			for _, p := range n.PodCIDRs() {
				cmds = append(cmds, hostGWRoute(p, n))
			}
		}
		if err := ipBatch(m.NS, cmds); err != nil {
			return nil, fmt.Errorf("%s routes to the new nodes: %w", m.Name, err)
		}
	}
	return added, nil
}

// OpenEchoServer is ServeTCP for callers without a testing.TB (the demo);
// the caller closes it.
func OpenEchoServer(ns string, addr netip.AddrPort) (*EchoServer, error) {
	return serveTCP(ns, addr)
}

// OpenCapture is StartCapture for callers without a testing.TB; Stop ends
// it, Close of the cluster at the latest.
func (c *Cluster) OpenCapture() (*Capture, error) {
	return c.startCapture()
}

// RoutePodCIDR adds a host-gw route on node on: pod CIDR p via its owner's
// underlay address, for clusters whose pod CIDRs are only known once a
// controller allocated them (NoPods clusters).
func (c *Cluster) RoutePodCIDR(on *Node, p netip.Prefix, owner *Node) error {
	if err := ipBatch(on.NS, []string{hostGWRoute(p, owner)}); err != nil {
		return fmt.Errorf("%s route to %s: %w", on.Name, p, err)
	}
	return nil
}
