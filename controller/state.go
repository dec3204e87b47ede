package controller

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// State is the desired datapath state derived from the cluster's Nodes.
type State struct {
	// SelfFound is false while this node's own Node object is unknown or
	// rejected. Local is then empty, unless that Node was deleted in strict
	// mode: while its tombstone lasts (Input.Gone), Local keeps the pod
	// CIDRs it last held that no live Node claims, because the machine
	// keeps running its pods and their traffic must stay marked.
	SelfFound bool
	Local     []netip.Prefix
	// Peers are the other nodes, in the engine's own type: the controller
	// produces what the engine consumes, with each key parsed here once.
	Peers    []proxy.Peer
	Rejected []Rejection
	// Fenced are rejected Nodes that hold pod CIDRs nobody else claims, and
	// deleted ones whose tombstones do (Input.Gone), as keyless peers with
	// those CIDRs, when Input.Fence asked for them: strict mode drops their
	// pods' traffic instead of sending it in clear (the engine treats them
	// as any keyless peer). Sorted by name.
	Fenced []proxy.Peer
}

// Desired is the part of st the engine converges to.
func (st State) Desired() proxy.Desired {
	peers := st.Peers
	if len(st.Fenced) > 0 {
		peers = slices.Concat(st.Peers, st.Fenced)
		slices.SortFunc(peers, func(a, b proxy.Peer) int { return cmp.Compare(a.Name, b.Name) })
	}
	return proxy.Desired{Local: st.Local, Peers: peers}
}

// Input is everything Build needs; it holds no reference to informers so the
// same code serves the API server and the nodes file.
type Input struct {
	Self        string
	SelfKey     wgtun.Key // this agent's own public key; zero if none
	DefaultPort uint16
	Nodes       []*corev1.Node
	// Seen is the order in which the source first saw each node (lower is
	// earlier). On a creation-time tie (timestamps have one-second
	// resolution) the node seen first wins, and any seen node over one
	// not in Seen, so a Node created in the same second as an established
	// one cannot take its pod CIDRs or key by its name. An order, not a
	// set of winners, so that Build over unchanged Nodes gives the same
	// result every time.
	Seen map[string]uint64
	// Fence makes Build return State.Fenced (for strict mode).
	Fence bool
	// Gone are the tombstones of deleted Nodes, by name. A Node deleted
	// and registered again (or gone for good while its machine still
	// runs) must not turn its pods' traffic into plaintext in between:
	// with Fence (strict mode), this node's own tombstone keeps Local and
	// the others' are fenced; without, they are ignored. A tombstone never takes anything from a live Node: it
	// is ignored when a Node of its name exists, and each of its pod
	// CIDRs is used only when it overlaps no live Node's claim, no CIDR
	// fenced for an overlap, no CIDR of a newer tombstone, and holds no
	// peer's endpoint. Build does not expire them; their keeper does
	// (Tracker).
	Gone map[string]Tombstone
}

// Tombstone is what a deleted Node leaves behind: the pod CIDRs it held in
// the state when it was deleted (as this node's own, a peer, or fenced)
// and when that was.
type Tombstone struct {
	PodCIDRs []netip.Prefix
	Deleted  time.Time
}

// Build validates every Node and returns the desired state. Conflicts are
// settled by age: this node's own claims first, then older Nodes
// (creationTimestamp, then the order they were seen in, then name), so a newcomer can never take over pod CIDRs
// or a key that an established node already holds. Each rejected Node is
// reported and skipped; it never affects the others.
//
// A node rejected for its key or endpoint keeps its claim on its (valid,
// uncontested) pod CIDRs and key: a misconfigured established node must not
// hand its pod traffic to a newcomer. For this node itself only the pod
// CIDRs matter: SelfKey is authoritative and its own endpoint is for peers.
//
// Peers are sorted by name, Rejected by node name then reason; the result
// does not depend on the order of in.Nodes.
func Build(in Input) State {
	var st State
	names := make(map[string]int, len(in.Nodes))
	nodes := make([]ranked, 0, len(in.Nodes))
	for _, n := range in.Nodes {
		if n != nil {
			names[n.Name]++
			seen, known := in.Seen[n.Name]
			nodes = append(nodes, ranked{
				self: n.Name == in.Self, known: known, seen: seen,
				created: n.CreationTimestamp.Time, name: n.Name, n: n,
				p: parseNode(n, in.DefaultPort),
			})
		}
	}
	slices.SortFunc(nodes, func(a, b ranked) int {
		if a.self != b.self {
			if a.self {
				return -1
			}
			return 1
		}
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		if a.known != b.known {
			if a.known {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.seen, b.seen), cmp.Compare(a.name, b.name))
	})

	claimed := newClaims(len(nodes))
	keys := make(map[wgtun.Key]string, len(nodes))
	if !in.SelfKey.IsZero() {
		keys[in.SelfKey] = in.Self
	}
	reject := func(name string, group ReasonGroup, reason string) {
		st.Rejected = append(st.Rejected, Rejection{Node: name, Reason: reason, Group: group})
	}
	rejectErr := func(name string, err error) { reject(name, groupOf(err), err.Error()) }
	// A Node rejected after its pod CIDRs were claimed keeps them fenced;
	// one rejected for an overlap may keep those nobody else claims (below).
	fence := func(name string, cidrs []netip.Prefix) {
		if in.Fence && len(cidrs) > 0 {
			st.Fenced = append(st.Fenced, proxy.Peer{Name: name, PodCIDRs: cidrs})
		}
	}
	var contested []proxy.Peer
	infos := make([]proxy.Peer, 0, len(nodes))
	for _, r := range nodes {
		n := r.n
		if c := names[n.Name]; c > 1 {
			// Only a hand-made Input can do this (names are unique in the API
			// and in ParseNodeList); no copy can be trusted over another.
			reject(n.Name, GroupOther, fmt.Sprintf("node name appears %d times", c))
			continue
		}
		p := r.p
		if p.cidrErr != nil {
			rejectErr(n.Name, p.cidrErr)
			continue
		}
		info := p.info
		info.PodCIDRs = slices.Clone(info.PodCIDRs) // the cache's copy stays untouched
		if mine, theirs, ok := claimed.overlaps(info.PodCIDRs); ok {
			reject(n.Name, GroupOverlap, fmt.Sprintf("pod CIDR %s overlaps %s, already claimed by an older node", mine, theirs))
			if in.Fence {
				contested = append(contested, info)
			}
			continue
		}
		claimed.add(info.PodCIDRs)
		if r.self {
			st.SelfFound = true
			st.Local = info.PodCIDRs
			continue
		}
		if p.keyErr != nil {
			rejectErr(n.Name, p.keyErr)
			fence(n.Name, info.PodCIDRs)
			continue
		}
		info.PublicKey = p.key
		if owner, dup := keys[info.PublicKey]; dup && !info.PublicKey.IsZero() {
			if owner == in.Self {
				reject(n.Name, GroupDuplicateKey, "public key is this node's own key")
			} else {
				reject(n.Name, GroupDuplicateKey, fmt.Sprintf("public key already used by node %s", owner))
			}
			fence(n.Name, info.PodCIDRs)
			continue
		}
		if !info.PublicKey.IsZero() {
			keys[info.PublicKey] = info.Name
		}
		if p.endpointErr != nil {
			rejectErr(n.Name, p.endpointErr)
			fence(n.Name, info.PodCIDRs)
			continue
		}
		info.Endpoint = p.endpoint
		infos = append(infos, info)
	}

	for _, info := range infos {
		// Checked once every claim is known: an endpoint inside any pod CIDR
		// would route the tunnel's own packets into the tunnel.
		if info.Endpoint.IsValid() {
			if p, in := claimed.containsAddr(info.Endpoint.Addr()); in {
				reject(info.Name, GroupEndpoint, fmt.Sprintf("endpoint %s lies inside pod CIDR %s", info.Endpoint, p))
				info.PublicKey, info.Endpoint = wgtun.Key{}, netip.AddrPort{}
				fence(info.Name, info.PodCIDRs)
				continue
			}
		}
		st.Peers = append(st.Peers, info)
	}
	// The pod CIDRs of a Node rejected for an overlap that overlap no claim,
	// and no such CIDR of an older rejected Node, are its own still.
	spare := newClaims(0)
	for _, c := range contested {
		fence(c.Name, unclaimed(c.PodCIDRs, spare, claimed))
	}
	st.mourn(in, names, claimed, spare)
	slices.SortFunc(st.Peers, func(a, b proxy.Peer) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(st.Fenced, func(a, b proxy.Peer) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(st.Rejected, func(a, b Rejection) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Reason, b.Reason))
	})
	return st
}

// mourn gives the tombstones in in.Gone what is still theirs, after every
// live Node and every CIDR fenced for an overlap (claimed and spare): this
// node's own becomes Local, the others' Fenced; only with in.Fence (strict
// mode). Without it the other agents drop a deleted Node's CIDRs and reach
// it in clear, so its own agent must not keep marking its pods' replies
// for a tunnel whose peers no longer take them. Newer
// tombstones first, since a CIDR in two of them was held last by the
// newer; live names are skipped.
func (st *State) mourn(in Input, live map[string]int, claimed, spare *claims) {
	if len(in.Gone) == 0 {
		return
	}
	type grave struct {
		name string
		t    Tombstone
	}
	graves := make([]grave, 0, len(in.Gone))
	for name, t := range in.Gone {
		if live[name] > 0 || !in.Fence {
			continue
		}
		graves = append(graves, grave{name, t})
	}
	if len(graves) == 0 {
		return
	}
	slices.SortFunc(graves, func(a, b grave) int {
		return cmp.Or(b.t.Deleted.Compare(a.t.Deleted), cmp.Compare(a.name, b.name))
	})
	// A peer's endpoint inside a fenced or local CIDR would send the
	// tunnel's own packets where that CIDR goes.
	// Indexed as host prefixes: a claims query then finds those inside a
	// CIDR in a few lookups, however many peers there are.
	eps := newClaims(len(st.Peers))
	for _, p := range st.Peers {
		if a := p.Endpoint.Addr(); p.Endpoint.IsValid() && a.Zone() == "" { // as claims.containsAddr
			eps.add([]netip.Prefix{netip.PrefixFrom(a, a.BitLen())})
		}
	}
	mourned := newClaims(0)
	for _, g := range graves {
		own := unclaimed(g.t.PodCIDRs, mourned, claimed, spare, eps)
		if len(own) == 0 {
			continue
		}
		if g.name == in.Self {
			st.Local = own
			continue
		}
		st.Fenced = append(st.Fenced, proxy.Peer{Name: g.name, PodCIDRs: own})
	}
}

// unclaimed returns the prefixes of ps that overlap nothing in into or in
// taken, in order, claiming each in into as it goes (so two of ps that
// overlap each other keep the first).
func unclaimed(ps []netip.Prefix, into *claims, taken ...*claims) []netip.Prefix {
	var own []netip.Prefix
next:
	for _, x := range ps {
		one := []netip.Prefix{x}
		if _, _, hit := into.overlaps(one); hit {
			continue
		}
		for _, c := range taken {
			if _, _, hit := c.overlaps(one); hit {
				continue next
			}
		}
		into.add(one)
		own = append(own, x)
	}
	return own
}

// Equal reports whether st and o are the same desired state. Typed, not
// reflect.DeepEqual: it runs on every rebuild, over every peer.
func (st State) Equal(o State) bool {
	return st.SelfFound == o.SelfFound && slices.Equal(st.Local, o.Local) &&
		slices.Equal(st.Rejected, o.Rejected) &&
		slices.EqualFunc(st.Peers, o.Peers, samePeer) && slices.EqualFunc(st.Fenced, o.Fenced, samePeer)
}

// ranked is a Node with its sort keys, computed once: the sort compares
// n log n times, and each comparison through the Node objects and the
// seen map would chase pointers and hash a name again; in the
// informer's random order that sort dominated a rebuild of a large cluster
// (docs/benchmarks.md).
type ranked struct {
	self, known bool
	seen        uint64
	created     time.Time
	name        string
	n           *corev1.Node
	p           *parsed
}
