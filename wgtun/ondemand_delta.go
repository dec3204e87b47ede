package wgtun

import (
	"bytes"
	"encoding/binary"
	"maps"
	"math/bits"
	"net/netip"
	"slices"
)

// A Node event changes one peer, so with on-demand peers it must not cost a
// pass over every desired peer: updateDesiredLocked applies the change to
// the desired set, to odIndex (who claims each lookup slot) and, from the
// slots it touched, to a copy of the lookup table that shares every
// untouched level. setDesiredLocked (SetPeers, SyncPeers: every resync)
// still rebuilds both from scratch, and is the reference the updates are
// tested against.

// odSlot is one prefix's entry in the lookup table: family, length and
// masked address (an IPv4 one in lo).
type odSlot struct {
	v6     bool
	bits   uint8
	hi, lo uint64
}

func slotOf(p netip.Prefix) odSlot {
	n := p.Bits()
	if p.Addr().Is4() {
		a := p.Addr().As4()
		return odSlot{bits: uint8(n), lo: uint64(binary.BigEndian.Uint32(a[:]) & mask4(n))}
	}
	a := p.Addr().As16()
	hi, lo := mask6(n)
	return odSlot{v6: true, bits: uint8(n), hi: binary.BigEndian.Uint64(a[:8]) & hi, lo: binary.BigEndian.Uint64(a[8:]) & lo}
}

// endpointIP is what byEndpoint indexes a peer's endpoint by; invalid for
// none.
func endpointIP(p Peer) netip.Addr { return p.Endpoint.Addr().Unmap() }

// odIndex holds, for every lookup slot and endpoint IP, the desired peers
// that claim it: nearly always one. Guarded by Device.setMu.
type odIndex struct {
	slots map[odSlot][]Key
	eps   map[netip.Addr][]Key
}

// odTouched collects the slots and endpoint IPs a change touched.
type odTouched struct {
	slots map[odSlot]struct{}
	eps   map[netip.Addr]struct{}
}

func newODIndex(desired map[Key]Peer) odIndex {
	x := odIndex{slots: make(map[odSlot][]Key, len(desired)), eps: make(map[netip.Addr][]Key, len(desired))}
	for k, p := range desired {
		x.add(k, p, nil)
	}
	return x
}

func (x *odIndex) add(k Key, p Peer, t *odTouched) {
	for _, pfx := range p.AllowedIPs {
		s := slotOf(pfx)
		x.slots[s] = append(x.slots[s], k)
		t.slot(s)
	}
	if ip := endpointIP(p); ip.IsValid() {
		x.eps[ip] = append(x.eps[ip], k)
		t.ep(ip)
	}
}

func (x *odIndex) remove(k Key, p Peer, t *odTouched) {
	for _, pfx := range p.AllowedIPs {
		s := slotOf(pfx)
		if ks := deleteKey(x.slots[s], k); len(ks) > 0 {
			x.slots[s] = ks
		} else {
			delete(x.slots, s)
		}
		t.slot(s)
	}
	if ip := endpointIP(p); ip.IsValid() {
		if ks := deleteKey(x.eps[ip], k); len(ks) > 0 {
			x.eps[ip] = ks
		} else {
			delete(x.eps, ip)
		}
		t.ep(ip)
	}
}

// replace moves k's claims from old to p, touching only the slots and
// endpoint IP that differ: a Node event that moves one pod CIDR copies
// one level of the table, not every level its peer is in.
func (x *odIndex) replace(k Key, old, p Peer, t *odTouched) {
	gone, added := diffPrefixes(old.AllowedIPs, p.AllowedIPs)
	x.remove(k, Peer{AllowedIPs: gone}, t)
	x.add(k, Peer{AllowedIPs: added}, t)
	if a, b := endpointIP(old), endpointIP(p); a != b {
		x.remove(k, Peer{Endpoint: old.Endpoint}, t)
		x.add(k, Peer{Endpoint: p.Endpoint}, t)
	}
}

// diffPrefixes returns what is in a and not in b, and what is in b and
// not in a.
func diffPrefixes(a, b []netip.Prefix) (onlyA, onlyB []netip.Prefix) {
	for _, p := range a {
		if !slices.Contains(b, p) {
			onlyA = append(onlyA, p)
		}
	}
	for _, p := range b {
		if !slices.Contains(a, p) {
			onlyB = append(onlyB, p)
		}
	}
	return onlyA, onlyB
}

// deleteKey removes one k from ks without writing to ks's array, which
// the caller may still share.
func deleteKey(ks []Key, k Key) []Key {
	i := slices.Index(ks, k)
	if i < 0 {
		return ks
	}
	return slices.Concat(ks[:i], ks[i+1:])
}

func (t *odTouched) slot(s odSlot) {
	if t == nil {
		return
	}
	if t.slots == nil {
		t.slots = map[odSlot]struct{}{}
	}
	t.slots[s] = struct{}{}
}

func (t *odTouched) ep(ip netip.Addr) {
	if t == nil {
		return
	}
	if t.eps == nil {
		t.eps = map[netip.Addr]struct{}{}
	}
	t.eps[ip] = struct{}{}
}

// with returns a copy of t with the touched slots and endpoint IPs set as
// x now has them (peers maps their keys to the desired peers' state). The
// levels and endpoint maps nothing touched are shared with t, which stays
// as it was for the packet paths still reading it.
func (t *odTable) with(x *odIndex, touched *odTouched, peers map[Key]*odPeer) *odTable {
	nt := &odTable{v4: slices.Clone(t.v4), v6: slices.Clone(t.v6), byIP4: t.byIP4, byIP6: t.byIP6}
	cloned := map[odLevelID]bool{}
	for s := range touched.slots {
		winner := owner(x.slots[s], peers)
		if s.v6 {
			hi, lo := mask6(int(s.bits))
			i := nt.level6(hi, lo, winner != nil)
			if i < 0 {
				continue
			}
			l := &nt.v6[i]
			if id := (odLevelID{v6: true, bits: s.bits}); !cloned[id] {
				l.m, cloned[id] = maps.Clone(l.m), true
			}
			setOrDelete(l.m, [2]uint64{s.hi, s.lo}, winner)
			continue
		}
		i := nt.level4(mask4(int(s.bits)), winner != nil)
		if i < 0 {
			continue
		}
		l := &nt.v4[i]
		if id := (odLevelID{bits: s.bits}); !cloned[id] {
			l.m, cloned[id] = maps.Clone(l.m), true
		}
		setOrDelete(l.m, uint32(s.lo), winner)
	}
	nt.v4 = slices.DeleteFunc(nt.v4, func(l v4Level) bool { return len(l.m) == 0 })
	nt.v6 = slices.DeleteFunc(nt.v6, func(l v6Level) bool { return len(l.m) == 0 })

	var c4, c6 bool
	for ip := range touched.eps {
		var set odPeerSet
		for _, k := range x.eps[ip] {
			set = set.add(peers[k])
		}
		if ip.Is4() {
			if !c4 {
				nt.byIP4, c4 = maps.Clone(nt.byIP4), true
			}
			a := ip.As4()
			setOrDeleteSet(nt.byIP4, binary.BigEndian.Uint32(a[:]), set)
			continue
		}
		if !c6 {
			nt.byIP6, c6 = maps.Clone(nt.byIP6), true
		}
		setOrDeleteSet(nt.byIP6, ip.As16(), set)
	}
	return nt
}

type odLevelID struct {
	v6   bool
	bits uint8
}

// owner is the peer a slot goes to: as in buildODTable, the smallest key
// among those claiming it.
func owner(ks []Key, peers map[Key]*odPeer) *odPeer {
	var best *odPeer
	for _, k := range ks {
		if best == nil || bytes.Compare(k[:], best.key[:]) < 0 {
			best = peers[k]
		}
	}
	return best
}

func setOrDelete[K comparable](m map[K]*odPeer, k K, p *odPeer) {
	if p == nil {
		delete(m, k)
	} else {
		m[k] = p
	}
}

func setOrDeleteSet[K comparable](m map[K]odPeerSet, k K, s odPeerSet) {
	if s.first == nil {
		delete(m, k)
	} else {
		m[k] = s
	}
}

// level4 returns the index of the IPv4 level with mask, adding an empty
// one in its place (longest first) if there is none and add; -1 if none.
func (t *odTable) level4(mask uint32, add bool) int {
	for i, l := range t.v4 {
		switch {
		case l.mask == mask:
			return i
		case bits.OnesCount32(l.mask) < bits.OnesCount32(mask):
			if !add {
				return -1
			}
			t.v4 = slices.Insert(t.v4, i, v4Level{mask: mask, m: map[uint32]*odPeer{}})
			return i
		}
	}
	if !add {
		return -1
	}
	t.v4 = append(t.v4, v4Level{mask: mask, m: map[uint32]*odPeer{}})
	return len(t.v4) - 1
}

func (t *odTable) level6(hi, lo uint64, add bool) int {
	n := bits.OnesCount64(hi) + bits.OnesCount64(lo)
	for i, l := range t.v6 {
		switch {
		case l.hi == hi && l.lo == lo:
			return i
		case bits.OnesCount64(l.hi)+bits.OnesCount64(l.lo) < n:
			if !add {
				return -1
			}
			t.v6 = slices.Insert(t.v6, i, v6Level{hi: hi, lo: lo, m: map[[2]uint64]*odPeer{}})
			return i
		}
	}
	if !add {
		return -1
	}
	t.v6 = append(t.v6, v6Level{hi: hi, lo: lo, m: map[[2]uint64]*odPeer{}})
	return len(t.v6) - 1
}

// updateDesiredLocked is setDesiredLocked for a change: remove, then
// upsert (normalised), applied to the desired set od holds. It returns what
// wireguard-go must hold, like setDesiredLocked, and costs what changed,
// not the size of the desired set. Caller holds setMu.
func (od *onDemand) updateDesiredLocked(upsert []Peer, remove []Key) map[Key]Peer {
	var touched odTouched
	for _, k := range remove {
		old, ok := od.desired[k]
		if !ok || slices.ContainsFunc(upsert, func(p Peer) bool { return p.PublicKey == k }) {
			continue // an upsert of the same key replaces it in place
		}
		od.index.remove(k, old, &touched)
		delete(od.desired, k)
		p := od.peers[k]
		delete(od.peers, k)
		if p.active.Load() {
			od.markInactive(p) // the write removes it
		}
		od.release(p)
	}
	for _, w := range upsert {
		k := w.PublicKey
		if _, ok := od.peers[k]; !ok {
			od.peers[k] = &odPeer{key: k}
		}
		old, had := od.desired[k]
		od.desired[k] = w
		if had && old.Endpoint == w.Endpoint && slices.Equal(old.AllowedIPs, w.AllowedIPs) {
			continue
		}
		if had {
			od.index.replace(k, old, w, &touched)
		} else {
			od.index.add(k, w, &touched)
		}
	}
	od.nDesired.Store(int64(len(od.desired)))
	if t := od.table.Load(); t == nil {
		od.table.Store(buildODTable(od.desired, od.peers))
	} else if len(touched.slots) > 0 || len(touched.eps) > 0 {
		od.table.Store(t.with(&od.index, &touched, od.peers))
	}
	return od.target()
}

// target is what wireguard-go must hold: the desired peers that are active.
func (od *onDemand) target() map[Key]Peer {
	target := make(map[Key]Peer, len(od.active))
	for k := range od.active {
		target[k] = od.desired[k]
	}
	return target
}
