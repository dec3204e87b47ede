package netcluster

import (
	"fmt"
	"net/netip"
)

// controlPlaneIP is where a control plane (kube-apiserver) listens on the
// underlay: inside the underlay namespace, on the bridge, so every node
// reaches it directly, as nodes reach a real API server over the node
// network. Nodes start at .11 and .1 is the unanswered gateway.
var controlPlaneIP = netip.AddrFrom4([4]byte{192, 168, 77, 2})

// AddControlPlane gives the underlay namespace an address on br0 and
// returns it; run the API server in c.Underlay bound to it. Its traffic
// with the nodes is node-originated and shows in captures as neither pod
// plaintext nor WireGuard.
func (c *Cluster) AddControlPlane() (netip.Addr, error) {
	if _, err := Exec(c.Underlay, "ip", "addr", "replace", controlPlaneIP.String()+"/24", "dev", "br0"); err != nil {
		return netip.Addr{}, fmt.Errorf("control plane address: %w", err)
	}
	return controlPlaneIP, nil
}
