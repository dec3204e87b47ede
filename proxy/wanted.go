package proxy

import (
	"cmp"
	"net/netip"
	"slices"
)

// Delta is a change to the desired state (Engine.Change): peers added or
// changed, whole; peers removed, by name; this node's pod CIDRs when
// LocalChanged.
type Delta struct {
	Upsert       []Peer
	Remove       []string
	LocalChanged bool
	Local        []netip.Prefix
}

// wanted is the desired state as Update and Change record it, with what
// changed since the last apply: whether a whole state arrived, and which
// peers changed. Guarded by Engine.mu.
type wanted struct {
	local    []netip.Prefix
	peers    map[string]Peer
	replaced bool
	dirty    map[string]struct{}
}

// peerChange is one changed peer as the apply sees it: its new value, or
// absent.
type peerChange struct {
	name    string
	peer    Peer
	present bool
}

func (w *wanted) replace(d Desired) {
	w.local = sortPrefixes(slices.Clone(d.Local))
	w.peers = make(map[string]Peer, len(d.Peers))
	for _, p := range d.Peers {
		p.PodCIDRs = slices.Clone(p.PodCIDRs)
		w.peers[p.Name] = p
	}
	w.replaced = true
	clear(w.dirty)
}

func (w *wanted) change(c Delta) {
	if w.dirty == nil {
		w.dirty = map[string]struct{}{}
	}
	for _, name := range c.Remove {
		delete(w.peers, name)
		w.dirty[name] = struct{}{}
	}
	for _, p := range c.Upsert {
		p.PodCIDRs = slices.Clone(p.PodCIDRs)
		w.peers[p.Name] = p
		w.dirty[p.Name] = struct{}{}
	}
	if c.LocalChanged {
		w.local = sortPrefixes(slices.Clone(c.Local))
	}
}

// pending lists the peers changed since the last apply, by name.
func (w *wanted) pending() []peerChange {
	out := make([]peerChange, 0, len(w.dirty))
	for name := range w.dirty {
		p, ok := w.peers[name]
		out = append(out, peerChange{name: name, peer: p, present: ok})
	}
	slices.SortFunc(out, func(a, b peerChange) int { return cmp.Compare(a.name, b.name) })
	return out
}

func (w *wanted) clearPending() {
	w.replaced = false
	clear(w.dirty)
}

// sortedPeers returns the desired peers sorted by name, deep enough copied
// that the caller shares no prefix slice with the record.
func (w *wanted) sortedPeers() []Peer {
	out := make([]Peer, 0, len(w.peers))
	for _, p := range w.peers {
		p.PodCIDRs = slices.Clone(p.PodCIDRs)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// desired is the whole desired state.
func (w *wanted) desired(strict bool) *Desired {
	return &Desired{Local: slices.Clone(w.local), Peers: w.sortedPeers(), strict: strict}
}

// remote is what the last apply marked, as Desired.remote.
func (a *appliedState) remote(strict bool) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range a.peers {
		out = append(out, remotePrefixes(p, strict)...)
	}
	return sortPrefixes(out)
}
