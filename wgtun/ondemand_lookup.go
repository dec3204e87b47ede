package wgtun

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
)

// odTable is an immutable snapshot of the desired peers, for the packet
// paths to find the peer a packet belongs to without a lock. It holds every
// desired peer, active or not, so that its longest-prefix match agrees with
// the one wireguard-go will make once the peer is configured: an inactive
// /16 must not win over an active /24 inside it. Whether a peer is active
// is its odPeer's flag, which changes without a new table; a new table is
// built only when the desired set changes.
type odTable struct {
	v4 []v4Level // longest prefix first
	v6 []v6Level // longest prefix first
	// byIP4 and byIP6 are the desired peers by endpoint IP (IPv4-mapped
	// IPv6 as IPv4).
	byIP4 map[uint32]odPeerSet
	byIP6 map[[16]byte]odPeerSet
}

// odPeerSet is the peers sharing an endpoint IP: nearly always one, held in
// the map value itself, so that building the table does not allocate per
// peer.
type odPeerSet struct {
	first *odPeer
	more  []*odPeer
}

func (s odPeerSet) add(p *odPeer) odPeerSet {
	if s.first == nil {
		s.first = p
	} else {
		s.more = append(s.more, p)
	}
	return s
}

// A v4Level holds the prefixes of one length: a lookup masks the address
// and tries one map per length present. Clusters use one or two lengths.
type v4Level struct {
	mask uint32
	m    map[uint32]*odPeer
}

type v6Level struct {
	hi, lo uint64 // mask
	m      map[[2]uint64]*odPeer
}

// IP header offsets of the destination address (as in wireguard-go's
// RoutineReadFromTUN).
const (
	ipv4DstOffset = 16
	ipv4HeaderLen = 20
	ipv6DstOffset = 24
	ipv6HeaderLen = 40
)

func mask4(bits int) uint32 { return ^uint32(0) << (32 - bits) } // 0 for bits 0 (Go shifts)

func mask6(bits int) (hi, lo uint64) {
	if bits <= 64 {
		return ^uint64(0) << (64 - bits), 0
	}
	return ^uint64(0), ^uint64(0) << (128 - bits)
}

// buildODTable indexes the desired peers (normalised). A prefix claimed by
// two peers, which a consistent cluster never has, goes to the smaller key,
// so that the result does not depend on map order.
func buildODTable(desired map[Key]Peer, peers map[Key]*odPeer) *odTable {
	t := &odTable{byIP4: make(map[uint32]odPeerSet, len(desired)), byIP6: map[[16]byte]odPeerSet{}}
	v4 := map[int]map[uint32]*odPeer{}
	v6 := map[int]map[[2]uint64]*odPeer{}
	owns := func(cur *odPeer, k Key) bool { return cur == nil || bytes.Compare(k[:], cur.key[:]) < 0 }
	for k, w := range desired {
		p := peers[k]
		for _, pfx := range w.AllowedIPs {
			bits := pfx.Bits()
			if pfx.Addr().Is4() {
				m := v4[bits]
				if m == nil {
					m = make(map[uint32]*odPeer, len(desired))
					v4[bits] = m
				}
				a := pfx.Addr().As4()
				key := binary.BigEndian.Uint32(a[:]) & mask4(bits)
				if owns(m[key], k) {
					m[key] = p
				}
				continue
			}
			m := v6[bits]
			if m == nil {
				m = map[[2]uint64]*odPeer{}
				v6[bits] = m
			}
			a := pfx.Addr().As16()
			hi, lo := mask6(bits)
			key := [2]uint64{binary.BigEndian.Uint64(a[:8]) & hi, binary.BigEndian.Uint64(a[8:]) & lo}
			if owns(m[key], k) {
				m[key] = p
			}
		}
		if ip := w.Endpoint.Addr().Unmap(); ip.Is4() {
			a := ip.As4()
			k := binary.BigEndian.Uint32(a[:])
			t.byIP4[k] = t.byIP4[k].add(p)
		} else if ip.IsValid() {
			a := ip.As16()
			t.byIP6[a] = t.byIP6[a].add(p)
		}
	}
	for _, bits := range sortedDesc(v4) {
		t.v4 = append(t.v4, v4Level{mask: mask4(bits), m: v4[bits]})
	}
	for _, bits := range sortedDesc(v6) {
		hi, lo := mask6(bits)
		t.v6 = append(t.v6, v6Level{hi: hi, lo: lo, m: v6[bits]})
	}
	return t
}

func sortedDesc[V any](m map[int]V) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	slices.Reverse(ks)
	return ks
}

// lookupPacket returns the desired peer whose allowed IPs hold the
// destination of the IP packet pkt, or nil.
func (t *odTable) lookupPacket(pkt []byte) *odPeer {
	if len(pkt) == 0 {
		return nil
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < ipv4HeaderLen {
			return nil
		}
		return t.lookup4(binary.BigEndian.Uint32(pkt[ipv4DstOffset:]))
	case 6:
		if len(pkt) < ipv6HeaderLen {
			return nil
		}
		return t.lookup6(binary.BigEndian.Uint64(pkt[ipv6DstOffset:]), binary.BigEndian.Uint64(pkt[ipv6DstOffset+8:]))
	}
	return nil
}

func (t *odTable) lookup4(a uint32) *odPeer {
	for i := range t.v4 {
		if p := t.v4[i].m[a&t.v4[i].mask]; p != nil {
			return p
		}
	}
	return nil
}

func (t *odTable) lookup6(hi, lo uint64) *odPeer {
	for i := range t.v6 {
		l := &t.v6[i]
		if p := l.m[[2]uint64{hi & l.hi, lo & l.lo}]; p != nil {
			return p
		}
	}
	return nil
}

// lookupAddr is lookupPacket for an address (tests, and nothing hot).
func (t *odTable) lookupAddr(a netip.Addr) *odPeer {
	if a.Is4() {
		b := a.As4()
		return t.lookup4(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return t.lookup6(binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]))
}

// byEndpoint returns the desired peers whose endpoint has IP a.
func (t *odTable) byEndpoint(a netip.Addr) odPeerSet {
	if a.Is4() || a.Is4In6() {
		b := a.As16()
		return t.byIP4[binary.BigEndian.Uint32(b[12:])]
	}
	return t.byIP6[a.As16()]
}
