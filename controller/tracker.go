package controller

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// Change is what one or more Node events changed in the desired state: the
// peers added or changed (whole), the peers removed (by name), and when
// they changed, this node's own pod CIDRs and the list of rejections.
type Change struct {
	Upsert []proxy.Peer
	Remove []string
	// Fence and Unfence change State.Fenced the same way.
	Fence   []proxy.Peer
	Unfence []string

	LocalChanged bool
	SelfFound    bool
	Local        []netip.Prefix

	// RejectedChanged says Rejected is the new full list of rejections
	// (they are few; a consumer replaces its list).
	RejectedChanged bool
	Rejected        []Rejection
	// Rejections are the nodes whose rejection reasons changed, with the
	// new reasons joined ("" when no longer rejected): what to log and
	// report as Events.
	Rejections map[string]string
}

// Empty reports whether c changes nothing.
func (c Change) Empty() bool {
	return len(c.Upsert) == 0 && len(c.Remove) == 0 && len(c.Fence) == 0 && len(c.Unfence) == 0 &&
		!c.LocalChanged && !c.RejectedChanged
}

// Tracker keeps the desired state up to date one Node at a time, in time
// and memory proportional to what a Node event touches, not to the size
// of the cluster.
//
// Build settles conflicts (overlapping pod CIDRs, a shared key, an
// endpoint inside a pod CIDR) by age across all Nodes, but a Node's fate
// depends only on the Nodes it could conflict with, and theirs on the
// Nodes they could conflict with, and so on. Set finds that group (its
// conflict component: almost always the one Node) through indexes of every
// Node's pod CIDRs, keys and endpoints, runs Build on it alone and reports
// the difference. Build over all Nodes stays the reference: Reset uses it,
// and the tests check that a random series of Set calls ends where Build
// over the final Nodes does.
//
// The tracker also keeps the tombstones of deleted Nodes (Input.Gone):
// this node's own always, the others' when fencing. A tombstone is
// dropped when a Node of its name exists again, when it is older than
// TombstoneTTL (by Expire, and by Reset), and, oldest first, when there
// are more than MaxTombstones: an autoscaled cluster's turnover must not
// grow the tracker without bound.
//
// Not safe for concurrent use.
type Tracker struct {
	self        string
	selfKey     wgtun.Key
	defaultPort uint16
	fence       bool

	// gone are the tombstones, indexed in cidrs under their names (a name
	// is either a live Node or a tombstone, never both). They outlive
	// Reset's clear.
	gone    map[string]Tombstone
	clock   func() time.Time
	ttl     time.Duration
	maxGone int

	nodes map[string]*tracked
	seen  *seniority
	cidrs *prefixIndex
	keys  map[wgtun.Key]names
	eps   *addrIndex

	peers     map[string]proxy.Peer
	fenced    map[string]proxy.Peer
	rejected  map[string][]Rejection
	selfFound bool
	local     []netip.Prefix
}

// tracked is one Node and what crosswire parsed out of it.
type tracked struct {
	n *corev1.Node
	p *parsed
}

// TombstoneTTL is how long a deleted Node's tombstone lasts: far longer
// than a kubelet takes to register a deleted Node again, and short
// enough that the pod CIDRs of a machine that is really gone are not
// fenced (strict mode) or kept local for long once nobody else claims
// them. A live Node claiming them takes them at once anyway.
const TombstoneTTL = time.Hour

// MaxTombstones bounds the tombstones a tracker keeps.
const MaxTombstones = 1024

// NewTracker returns an empty tracker for the node named self, whose own
// key is selfKey; defaultPort and fence are Input.DefaultPort and
// Input.Fence.
func NewTracker(self string, selfKey wgtun.Key, defaultPort uint16, fence bool) *Tracker {
	t := &Tracker{
		self: self, selfKey: selfKey, defaultPort: defaultPort, fence: fence, seen: newSeniority(),
		gone: map[string]Tombstone{}, clock: time.Now, ttl: TombstoneTTL, maxGone: MaxTombstones,
	}
	t.clear()
	return t
}

func (t *Tracker) clear() {
	t.nodes = map[string]*tracked{}
	t.cidrs = newPrefixIndex()
	t.keys = map[wgtun.Key]names{}
	t.eps = newAddrIndex()
	t.peers = map[string]proxy.Peer{}
	t.fenced = map[string]proxy.Peer{}
	t.rejected = map[string][]Rejection{}
	t.selfFound, t.local = false, nil
}

// Reset replaces every Node with nodes and returns the state Build
// computes over them and the tombstones. Nodes the tracker knew keep
// their seniority; those it knew that are not in nodes leave tombstones,
// as if deleted; expired tombstones are dropped.
func (t *Tracker) Reset(nodes []*corev1.Node) State {
	live := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if n != nil {
			live[n.Name] = true
		}
	}
	now := t.clock()
	for _, name := range slices.Sorted(maps.Keys(t.nodes)) {
		if !live[name] {
			t.bury(name, now)
		}
	}
	for name := range t.gone {
		if live[name] {
			delete(t.gone, name)
		}
	}
	for _, name := range t.expired(now) {
		delete(t.gone, name)
	}
	t.clear()
	t.seen.sync(nodes)
	for _, n := range nodes {
		if n != nil {
			t.index(n)
		}
	}
	for name, tomb := range t.gone {
		for _, p := range tomb.PodCIDRs {
			t.cidrs.add(p, name)
		}
	}
	st := Build(Input{Self: t.self, SelfKey: t.selfKey, DefaultPort: t.defaultPort, Nodes: nodes, Seen: t.seen.seen, Fence: t.fence, Gone: t.gone})
	for _, p := range st.Peers {
		t.peers[p.Name] = p
	}
	for _, p := range st.Fenced {
		t.fenced[p.Name] = p
	}
	for _, rj := range st.Rejected {
		t.rejected[rj.Node] = append(t.rejected[rj.Node], rj)
	}
	t.selfFound, t.local = st.SelfFound, slices.Clone(st.Local)
	return st
}

// State returns the whole current state, as Build would.
func (t *Tracker) State() State {
	st := State{SelfFound: t.selfFound, Local: slices.Clone(t.local)}
	st.Peers = make([]proxy.Peer, 0, len(t.peers))
	for _, p := range t.peers {
		p.PodCIDRs = slices.Clone(p.PodCIDRs)
		st.Peers = append(st.Peers, p)
	}
	slices.SortFunc(st.Peers, func(a, b proxy.Peer) int { return cmp.Compare(a.Name, b.Name) })
	for _, p := range t.fenced {
		p.PodCIDRs = slices.Clone(p.PodCIDRs)
		st.Fenced = append(st.Fenced, p)
	}
	slices.SortFunc(st.Fenced, func(a, b proxy.Peer) int { return cmp.Compare(a.Name, b.Name) })
	st.Rejected = t.rejectedList()
	return st
}

func (t *Tracker) rejectedList() []Rejection {
	var out []Rejection
	for _, rs := range t.rejected {
		out = append(out, rs...)
	}
	slices.SortFunc(out, func(a, b Rejection) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

// Set records Node n under name (nil: the Node is gone) and returns what
// changed in the state.
func (t *Tracker) Set(name string, n *corev1.Node) Change {
	if n != nil && n.Name != name {
		n = nil // only a broken caller; never index a Node under another name
	}
	group := map[string]bool{name: true}
	old := t.nodes[name]
	if old != nil {
		// Those the old version conflicted with may be free now.
		t.neighbours(old, group)
	}
	if n != nil {
		// Back: its live Node rules, and what its tombstone kept from
		// others (a newer tombstone's CIDR, for one) may be free. Dropped
		// from the index before the live Node enters it under that name.
		t.forget(name, group)
	}
	var now *tracked
	if n != nil {
		now = &tracked{n: n, p: parseNode(n, t.defaultPort)}
		t.nodes[name] = now
		t.seen.add(name)
	} else if old != nil {
		t.bury(name, t.clock())
		delete(t.nodes, name)
		t.seen.remove(name)
	}
	t.reindex(name, old, now)
	if tomb, ok := t.gone[name]; ok && old != nil && now == nil {
		for _, p := range tomb.PodCIDRs {
			t.cidrs.add(p, name)
		}
		for _, m := range t.overflow() {
			t.forget(m, group)
		}
	}
	if now != nil {
		t.neighbours(now, group)
	}
	return t.settle(group)
}

// Expire drops the tombstones older than the tracker's TTL and returns
// what that changed. The TTL is checked only here and in Reset, which
// their callers run periodically: a tombstone lasts at most one period
// longer.
func (t *Tracker) Expire() Change {
	group := map[string]bool{}
	for _, name := range t.expired(t.clock()) {
		t.forget(name, group)
	}
	return t.settle(group)
}

// tombstones returns a copy of the tombstones the tracker keeps, by name.
func (t *Tracker) tombstones() map[string]Tombstone {
	out := make(map[string]Tombstone, len(t.gone))
	for name, tomb := range t.gone {
		tomb.PodCIDRs = slices.Clone(tomb.PodCIDRs)
		out[name] = tomb
	}
	return out
}

// settle decides the nodes and tombstones of group again, grown to its
// conflict components, and returns the difference.
func (t *Tracker) settle(group map[string]bool) Change {
	t.closure(group)
	members := make([]*corev1.Node, 0, len(group))
	var gone map[string]Tombstone
	for m := range group {
		if tn, ok := t.nodes[m]; ok {
			members = append(members, tn.n)
		} else if tomb, ok := t.gone[m]; ok {
			if gone == nil {
				gone = map[string]Tombstone{}
			}
			gone[m] = tomb
		}
	}
	st := Build(Input{Self: t.self, SelfKey: t.selfKey, DefaultPort: t.defaultPort, Nodes: members, Seen: t.seen.seen, Fence: t.fence, Gone: gone})
	return t.merge(group, st)
}

// bury records a tombstone for the live node name, about to be deleted at
// now: the pod CIDRs it holds in the state. None when not fencing: Build
// would ignore them. It does not index it.
func (t *Tracker) bury(name string, now time.Time) {
	var held []netip.Prefix
	switch {
	case !t.fence:
	case name == t.self:
		held = t.local
	default:
		if p, ok := t.peers[name]; ok {
			held = p.PodCIDRs
		} else if p, ok := t.fenced[name]; ok {
			held = p.PodCIDRs
		}
	}
	if len(held) == 0 {
		// Nothing to keep, and an older tombstone of the name (if any)
		// is outdated: the Node existed since.
		delete(t.gone, name)
		return
	}
	t.gone[name] = Tombstone{PodCIDRs: slices.Clone(held), Deleted: now}
}

// forget drops name's tombstone, if any, from the tracker and its index,
// adding to group the name and those its CIDRs may have kept out.
func (t *Tracker) forget(name string, group map[string]bool) {
	tomb, ok := t.gone[name]
	if !ok {
		return
	}
	group[name] = true
	t.graveNeighbours(tomb, group)
	for _, p := range tomb.PodCIDRs {
		t.cidrs.remove(p, name)
	}
	delete(t.gone, name)
}

// expired returns the tombstones to drop at now: those older than the
// TTL, then the oldest beyond the cap. Sorted, so that what a Change says
// never depends on map order.
func (t *Tracker) expired(now time.Time) []string {
	var out []string
	for name, tomb := range t.gone {
		if now.Sub(tomb.Deleted) >= t.ttl {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return append(out, t.overflowAfter(out)...)
}

// overflow returns the oldest tombstones beyond the cap.
func (t *Tracker) overflow() []string { return t.overflowAfter(nil) }

// overflowAfter is overflow once the tombstones named in dropping are gone.
func (t *Tracker) overflowAfter(dropping []string) []string {
	n := len(t.gone) - len(dropping)
	if n <= t.maxGone {
		return nil
	}
	type grave struct {
		name    string
		deleted time.Time
	}
	graves := make([]grave, 0, len(t.gone))
	for name, tomb := range t.gone {
		if !slices.Contains(dropping, name) {
			graves = append(graves, grave{name, tomb.Deleted})
		}
	}
	slices.SortFunc(graves, func(a, b grave) int {
		return cmp.Or(a.deleted.Compare(b.deleted), cmp.Compare(a.name, b.name))
	})
	out := make([]string, 0, n-t.maxGone)
	for _, g := range graves[:n-t.maxGone] {
		out = append(out, g.name)
	}
	return out
}

// merge replaces the results of the nodes in group with st, Build's result
// over exactly them, and returns the difference.
func (t *Tracker) merge(group map[string]bool, st State) Change {
	var c Change
	newPeers := make(map[string]proxy.Peer, len(st.Peers))
	for _, p := range st.Peers {
		newPeers[p.Name] = p
	}
	newFenced := make(map[string]proxy.Peer, len(st.Fenced))
	for _, p := range st.Fenced {
		newFenced[p.Name] = p
	}
	newRejected := map[string][]Rejection{}
	for _, rj := range st.Rejected {
		newRejected[rj.Node] = append(newRejected[rj.Node], rj)
	}
	// Sorted, so that a Change never depends on map order.
	order := make([]string, 0, len(group))
	for m := range group {
		order = append(order, m)
	}
	slices.Sort(order)
	for _, m := range order {
		c.Upsert, c.Remove = replaceIn(t.peers, m, newPeers, c.Upsert, c.Remove)
		c.Fence, c.Unfence = replaceIn(t.fenced, m, newFenced, c.Fence, c.Unfence)
		if rs := newRejected[m]; !slices.Equal(rs, t.rejected[m]) {
			if c.Rejections == nil {
				c.Rejections = map[string]string{}
			}
			c.Rejections[m] = joinReasons(rs)
			if len(rs) == 0 {
				delete(t.rejected, m)
			} else {
				t.rejected[m] = rs
			}
			c.RejectedChanged = true
		}
	}
	if group[t.self] && (st.SelfFound != t.selfFound || !slices.Equal(st.Local, t.local)) {
		t.selfFound, t.local = st.SelfFound, slices.Clone(st.Local)
		c.LocalChanged = true
	}
	c.SelfFound, c.Local = t.selfFound, slices.Clone(t.local)
	if c.RejectedChanged {
		c.Rejected = t.rejectedList()
	}
	return c
}

// replaceIn makes cur[m] what next[m] is, appending the peer to upsert or
// its name to remove when that changes something.
func replaceIn(cur map[string]proxy.Peer, m string, next map[string]proxy.Peer, upsert []proxy.Peer, remove []string) ([]proxy.Peer, []string) {
	old, had := cur[m]
	p, has := next[m]
	switch {
	case has && (!had || !samePeer(old, p)):
		cur[m] = p
		upsert = append(upsert, p)
	case had && !has:
		delete(cur, m)
		remove = append(remove, m)
	}
	return upsert, remove
}

func samePeer(a, b proxy.Peer) bool {
	return a.Name == b.Name && a.PublicKey == b.PublicKey && a.Endpoint == b.Endpoint && a.PQPort == b.PQPort &&
		slices.Equal(a.PodCIDRs, b.PodCIDRs)
}

// joinReasons is the one message for a node's rejections, "" for none.
func joinReasons(rs []Rejection) string {
	var s string
	for i, r := range rs {
		if i > 0 {
			s += "; "
		}
		s += r.Reason
	}
	return s
}

// index parses n and enters it in the indexes.
func (t *Tracker) index(n *corev1.Node) {
	tn := &tracked{n: n, p: parseNode(n, t.defaultPort)}
	t.nodes[n.Name] = tn
	t.reindex(n.Name, nil, tn)
}

// reindex moves node name's index entries from what old claims to what now
// claims (either may be nil), touching only what differs: a Node event
// that changes a key leaves the pod CIDR and endpoint indexes alone.
func (t *Tracker) reindex(name string, old, now *tracked) {
	oldCIDRs, newCIDRs := old.cidrs(), now.cidrs()
	for _, p := range oldCIDRs {
		if !slices.Contains(newCIDRs, p) {
			t.cidrs.remove(p, name)
		}
	}
	for _, p := range newCIDRs {
		if !slices.Contains(oldCIDRs, p) {
			t.cidrs.add(p, name)
		}
	}
	if ok, nk := old.indexedKey(), now.indexedKey(); ok != nk {
		if !ok.IsZero() {
			if ns := t.keys[ok].remove(name); len(ns) > 0 {
				t.keys[ok] = ns
			} else {
				delete(t.keys, ok)
			}
		}
		if !nk.IsZero() {
			t.keys[nk] = t.keys[nk].add(name)
		}
	}
	if oe, ne := old.indexedEndpoint(), now.indexedEndpoint(); oe != ne {
		if oe.IsValid() {
			t.eps.remove(oe, name)
		}
		if ne.IsValid() {
			t.eps.add(ne, name)
		}
	}
}

// cidrs are the pod CIDRs tn is indexed under: none when they do not parse.
func (tn *tracked) cidrs() []netip.Prefix {
	if tn == nil || tn.p.cidrErr != nil {
		return nil
	}
	return tn.p.info.PodCIDRs
}

// indexedKey is the key tn is indexed under, zero for none.
func (tn *tracked) indexedKey() wgtun.Key {
	if tn == nil || tn.p.keyErr != nil {
		return wgtun.Key{}
	}
	return tn.p.key
}

// indexedEndpoint is the endpoint address tn is indexed under.
func (tn *tracked) indexedEndpoint() netip.Addr {
	if tn == nil || tn.p.endpointErr != nil || !tn.p.endpoint.IsValid() {
		return netip.Addr{}
	}
	return tn.p.endpoint.Addr()
}

// neighbours adds to group every indexed node tn could conflict with: one
// claiming an overlapping pod CIDR, holding the same key, publishing an
// endpoint inside tn's pod CIDRs, or claiming a CIDR that holds tn's
// endpoint. It over-approximates (a node rejected for its key still
// indexes its key), which only makes a group larger than it must be.
func (t *Tracker) neighbours(tn *tracked, group map[string]bool) {
	add := func(n string) { group[n] = true }
	for _, p := range tn.cidrs() {
		t.cidrs.overlapping(p, add)
		t.eps.inside(p, add)
	}
	if k := tn.indexedKey(); !k.IsZero() {
		for _, n := range t.keys[k] {
			add(n)
		}
	}
	if a := tn.indexedEndpoint(); a.IsValid() {
		t.cidrs.containing(a, add)
	}
}

// graveNeighbours adds to group every indexed node or tombstone that
// tomb's CIDRs could take from or yield to: those claiming an overlapping
// pod CIDR, and the nodes whose endpoints lie inside one.
func (t *Tracker) graveNeighbours(tomb Tombstone, group map[string]bool) {
	add := func(n string) { group[n] = true }
	for _, p := range tomb.PodCIDRs {
		t.cidrs.overlapping(p, add)
		t.eps.inside(p, add)
	}
}

// closure grows group to every node and tombstone reachable through
// neighbours.
func (t *Tracker) closure(group map[string]bool) {
	queue := make([]string, 0, len(group))
	for m := range group {
		queue = append(queue, m)
	}
	done := map[string]bool{}
	for len(queue) > 0 {
		m := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if done[m] {
			continue
		}
		done[m] = true
		before := len(group)
		if tn, ok := t.nodes[m]; ok {
			t.neighbours(tn, group)
		} else if tomb, ok := t.gone[m]; ok {
			t.graveNeighbours(tomb, group)
		} else {
			continue
		}
		if len(group) != before {
			for n := range group {
				if !done[n] {
					queue = append(queue, n)
				}
			}
		}
	}
}

// Delta is the part of c the engine applies. Fenced Nodes are keyless
// peers to it; a name is never both a peer and fenced, so a name that
// moves from one to the other is upserted, not removed.
func (c Change) Delta() proxy.Delta {
	d := proxy.Delta{Upsert: slices.Concat(c.Upsert, c.Fence), LocalChanged: c.LocalChanged, Local: c.Local}
	for _, name := range slices.Concat(c.Remove, c.Unfence) {
		if !slices.ContainsFunc(d.Upsert, func(p proxy.Peer) bool { return p.Name == name }) {
			d.Remove = append(d.Remove, name)
		}
	}
	return d
}
