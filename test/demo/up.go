package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

func up(bin string) error {
	if _, err := os.Stat(stateFile); err == nil {
		return fmt.Errorf("a demo is already running (%s); run `make demo-down` first", stateFile)
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	fmt.Println("crosswire demo: 3 nodes x 2 pods in network namespaces, one agent per node")
	var c *netcluster.Cluster
	if err := step("building the cluster", func() error {
		c, err = netcluster.Build(netcluster.Options{Nodes: 3, PodsPerNode: 2, Prefix: prefix})
		if err != nil {
			return err
		}
		data, _ := json.Marshal(state{Prefix: c.Prefix, Root: c.Root})
		return os.WriteFile(stateFile, data, 0o644)
	}); err != nil {
		return err
	}
	cw := cwcluster.New(c, bin, 0)
	cw.HostSockets = true
	if err := step("starting crosswire agents", func() error { _, err := cw.StartAgents(); return err }); err != nil {
		return err
	}
	if err := step("waiting for tunnels (handshakes)", cw.WaitConverged); err != nil {
		return err
	}

	fmt.Println()
	results, err := runFlows(cw)
	if err != nil {
		return err
	}
	printFlows(results)

	n1 := c.Nodes[0]
	fmt.Printf("\n--- %s: nft list table inet crosswire (counters and comments explain each rule)\n", n1.Name)
	out, err := netcluster.Exec(n1.NS, "nft", "list", "table", "inet", cwcluster.NftTable)
	if err != nil {
		return err
	}
	fmt.Print(trimSets(out))
	fmt.Printf("\n--- %s: wg show %s\n", n1.Name, cw.Iface(n1))
	out, err = cw.WG(n1, "show", cw.Iface(n1))
	if err != nil {
		return err
	}
	fmt.Print(out)

	bad := 0
	for _, r := range results {
		if !r.ok {
			bad++
		}
	}
	if bad > 0 {
		fmt.Printf("\nVERDICT: FAIL (%d of %d flows not as designed)\n", bad, len(results))
	} else {
		fmt.Printf("\nVERDICT: PASS (%d flows as designed: cross-node pod traffic encrypted, local and node traffic unmarked)\n", len(results))
	}
	printHelp(cw)
	if bad > 0 {
		return fmt.Errorf("%d flows not as designed", bad)
	}
	return nil
}

// trimSets keeps the listing short: sets are shown by their elements line.
func trimSets(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "flags interval") || strings.Contains(l, "type ipv") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func printHelp(cw *cwcluster.Cluster) {
	n1 := cw.Nodes[0]
	fmt.Printf(`
The cluster keeps running. Things to try:
  wg show                      (every node's tunnel; sockets are in /var/run/wireguard)
  ip netns exec %[1]s nft list table inet crosswire
  ip netns exec %[1]s ip rule show
  ip netns exec %[1]s ip route show table %[2]d
  ip netns exec %[3]s ping 10.244.2.10
  ip netns exec %[4]s tcpdump -ni br0
  tail -f %[5]s
  edit %[6]s to add or remove nodes (agents reload it within a second)
Remove everything: make demo-down
`, n1.NS, cwcluster.Table, n1.Pods[0].NS, cw.Underlay,
		filepath.Join(cw.Root, n1.Name+"-agent.log"), cw.NodesFile)
}
