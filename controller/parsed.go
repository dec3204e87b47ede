package controller

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// parsed is the result of the per-Node checks, errors included: what Build
// and the Tracker's indexes read of a Node.
type parsed struct {
	info        proxy.Peer // name and pod CIDRs
	cidrErr     error
	key         wgtun.Key
	keyErr      error
	endpoint    netip.AddrPort
	endpointErr error
}

func parseNode(n *corev1.Node, defaultPort uint16) *parsed {
	p := &parsed{}
	p.info, p.cidrErr = parseNodeCIDRs(n)
	p.key, p.keyErr = nodeKey(n)
	p.endpoint, p.endpointErr = nodeEndpoint(n, defaultPort)
	return p
}
