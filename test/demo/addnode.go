package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/netcluster"
)

// addNode grows the running demo by one node with its pods, registers its
// Node and starts its agent, then shows the others learning it through the
// API server and the new pods reached encrypted.
func addNode(dir string) error {
	start := time.Now()
	st, err := loadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no demo is running (no %s); start one with `make demo`", filepath.Join(dir, stateFile))
	}
	if err != nil {
		return err
	}
	c, err := netcluster.Reopen(netcluster.Options{Nodes: st.Nodes, PodsPerNode: podsPerNode, Prefix: st.Prefix}, st.Root)
	if err != nil {
		return err
	}
	srv, err := apiserver.Attach(st.apiDir())
	if err != nil {
		return err
	}
	admin, err := kubernetes.NewForConfig(srv.Admin)
	if err != nil {
		return err
	}
	ctx := context.Background()
	name := fmt.Sprintf("node%d", st.Nodes+1)
	fmt.Printf("crosswire demo: adding %s\n", name)
	var n *netcluster.Node
	if err := step(name+": namespaces, pods, host-gw routes", func() (string, error) {
		added, err := c.AddNodes(1)
		if err != nil {
			return "", err
		}
		n = added[0]
		st.Nodes = len(c.Nodes)
		return fmt.Sprintf("%s, pods %s", n.NS, n.PodCIDR), st.save()
	}); err != nil {
		return err
	}
	cw := st.agents(c, admin)
	if err := step(name+": Node object + agent", func() (string, error) {
		if err := st.writeAgentKubeconfigs(ctx, srv, admin, cw, []*netcluster.Node{n}); err != nil {
			return "", err
		}
		if err := cw.StartNodes(n); err != nil {
			return "", err
		}
		return filepath.Join(c.Root, n.Name+"-agent.log"), markReady(ctx, admin, []*netcluster.Node{n})
	}); err != nil {
		return err
	}
	if err := step("every node peers with "+name, func() (string, error) {
		return "", cw.WaitConvergedNodes(c.Nodes...)
	}); err != nil {
		return err
	}
	src, dst := c.Nodes[0].Pods[0], n.Pods[0]
	r, err := measure(cw, flow{fmt.Sprintf("%s -> %s (ICMP, to the new node)", src.Name, dst.Name), c.Nodes[0], "encrypted", func() error {
		return src.Ping(dst.IP, 3)
	}})
	if err != nil {
		return err
	}
	fmt.Println()
	printFlows([]flowResult{r})
	fmt.Printf("\n%s joined in %.0f s. Enter it: ip netns exec %s bash; its tunnel: wg show %s\n", name, time.Since(start).Seconds(), n.NS, st.iface(n))
	if !r.ok {
		return fmt.Errorf("%s: %s", r.name, r.verdict)
	}
	return nil
}
