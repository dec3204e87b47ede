package controller

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// ParseCache remembers what Build parsed out of each Node object, keyed by
// UID and resourceVersion: a Node event changes one object, yet Build sees
// all of them, and re-parsing every annotation, key and CIDR of every Node
// on each event makes a large part of the rebuild work that did not change
// (docs/benchmarks.md has the measurement). Objects without a
// resourceVersion (the nodes file) are never cached. Not safe for
// concurrent use: one KubeSource owns one.
type ParseCache struct {
	entries map[types.UID]*parsed
	gen     uint64 // Build calls; entries not seen in the last one are dropped
	ranks   int    // Nodes the last Build sorted
}

// parsed is the result of the per-Node checks, errors included.
type parsed struct {
	version     string
	defaultPort uint16
	seen        uint64
	rank        int // 1 + position in the last Build's order; 0 if none

	info        proxy.Peer // name and pod CIDRs
	cidrErr     error
	key         wgtun.Key
	keyErr      error
	endpoint    netip.AddrPort
	endpointErr error
}

// NewParseCache returns an empty cache.
func NewParseCache() *ParseCache { return &ParseCache{entries: map[types.UID]*parsed{}} }

// parse returns n's parsed fields, from the cache when n is unchanged.
func (c *ParseCache) parse(n *corev1.Node, defaultPort uint16) *parsed {
	if c == nil || n.ResourceVersion == "" || n.UID == "" {
		return parseNode(n, defaultPort)
	}
	if p, ok := c.entries[n.UID]; ok && p.version == n.ResourceVersion && p.defaultPort == defaultPort {
		p.seen = c.gen
		return p
	}
	p := parseNode(n, defaultPort)
	p.version, p.seen = n.ResourceVersion, c.gen
	c.entries[n.UID] = p
	return p
}

// begin starts a Build; end drops the entries of Nodes it did not see.
func (c *ParseCache) begin() {
	if c != nil {
		c.gen++
	}
}

func (c *ParseCache) end() {
	if c == nil {
		return
	}
	for uid, p := range c.entries {
		if p.seen != c.gen {
			delete(c.entries, uid)
		}
	}
}

func parseNode(n *corev1.Node, defaultPort uint16) *parsed {
	p := &parsed{defaultPort: defaultPort}
	p.info, p.cidrErr = parseNodeCIDRs(n)
	p.key, p.keyErr = nodeKey(n)
	p.endpoint, p.endpointErr = nodeEndpoint(n, defaultPort)
	return p
}

// presort puts nodes in the order the last Build sorted them into, new ones
// last, in linear time: the sort that follows then finds the input nearly
// sorted (a Node event changes one Node's place at most) instead of in the
// informer's random order.
func (c *ParseCache) presort(nodes []ranked) []ranked {
	if c == nil || c.ranks == 0 {
		return nodes
	}
	slot := make([]int32, c.ranks)
	for i := range slot {
		slot[i] = -1
	}
	var rest []ranked
	for i, r := range nodes {
		if k := r.p.rank - 1; k >= 0 && k < len(slot) && slot[k] < 0 {
			slot[k] = int32(i)
		} else {
			rest = append(rest, r)
		}
	}
	out := make([]ranked, 0, len(nodes))
	for _, i := range slot {
		if i >= 0 {
			out = append(out, nodes[i])
		}
	}
	return append(out, rest...)
}

// ranked records the order Build sorted nodes into, for the next presort.
func (c *ParseCache) ranked(nodes []ranked) {
	if c == nil {
		return
	}
	for i, r := range nodes {
		r.p.rank = i + 1
	}
	c.ranks = len(nodes)
}
