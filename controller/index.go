package controller

import (
	"net/netip"
	"slices"
)

// names is a small set of node names kept as a slice: almost every key of
// the indexes below belongs to one node, and a map per key would cost
// more than the scan.
type names []string

func (ns names) add(n string) names {
	if slices.Contains(ns, n) {
		return ns
	}
	return append(ns, n)
}

func (ns names) remove(n string) names {
	if i := slices.Index(ns, n); i >= 0 {
		ns = slices.Delete(ns, i, i+1)
	}
	return ns
}

// prefixIndex maps pod CIDRs to the nodes that claim them and answers
// "which nodes claim a prefix overlapping p" without a scan of all of
// them: one map lookup per shorter prefix length in use, and a binary
// search per longer one. Clusters use one or two lengths, so a query costs
// a few lookups whatever the number of nodes.
type prefixIndex struct {
	owners map[netip.Prefix]names
	// sorted holds the distinct prefixes of each family (0 IPv4, 1 IPv6)
	// and length, in address order, for the "inside p" half of a query.
	sorted [2][129][]netip.Prefix
	lens   [2][]int // lengths with at least one prefix
}

func newPrefixIndex() *prefixIndex { return &prefixIndex{owners: map[netip.Prefix]names{}} }

func (x *prefixIndex) add(p netip.Prefix, node string) {
	p = p.Masked()
	ns, had := x.owners[p]
	x.owners[p] = ns.add(node)
	if had {
		return
	}
	f, l := family(p.Addr()), p.Bits()
	s := x.sorted[f][l]
	i, _ := slices.BinarySearchFunc(s, p, netip.Prefix.Compare)
	x.sorted[f][l] = slices.Insert(s, i, p)
	if len(x.sorted[f][l]) == 1 {
		x.lens[f] = append(x.lens[f], l)
	}
}

func (x *prefixIndex) remove(p netip.Prefix, node string) {
	p = p.Masked()
	ns, ok := x.owners[p]
	if !ok {
		return
	}
	if ns = ns.remove(node); len(ns) > 0 {
		x.owners[p] = ns
		return
	}
	delete(x.owners, p)
	f, l := family(p.Addr()), p.Bits()
	s := x.sorted[f][l]
	if i, found := slices.BinarySearchFunc(s, p, netip.Prefix.Compare); found {
		x.sorted[f][l] = slices.Delete(s, i, i+1)
	}
	if len(x.sorted[f][l]) == 0 {
		x.lens[f] = slices.DeleteFunc(x.lens[f], func(n int) bool { return n == l })
	}
}

// overlapping calls fn with every node that claims a prefix overlapping p.
func (x *prefixIndex) overlapping(p netip.Prefix, fn func(string)) {
	p = p.Masked()
	f := family(p.Addr())
	for _, l := range x.lens[f] {
		if l <= p.Bits() {
			// A prefix that contains p (or is p).
			if q, err := p.Addr().Prefix(l); err == nil {
				for _, n := range x.owners[q] {
					fn(n)
				}
			}
			continue
		}
		// Prefixes inside p: a contiguous run in address order.
		s := x.sorted[f][l]
		i, _ := slices.BinarySearchFunc(s, netip.PrefixFrom(p.Addr(), l), netip.Prefix.Compare)
		for ; i < len(s) && p.Contains(s[i].Addr()); i++ {
			for _, n := range x.owners[s[i]] {
				fn(n)
			}
		}
	}
}

// containing calls fn with every node that claims a prefix containing a.
func (x *prefixIndex) containing(a netip.Addr, fn func(string)) {
	if a.Zone() != "" {
		return // as netip.Prefix.Contains
	}
	x.overlapping(netip.PrefixFrom(a, a.BitLen()), fn)
}

// addrIndex maps endpoint addresses to the nodes that publish them and
// lists those inside a prefix by binary search.
type addrIndex struct {
	owners map[netip.Addr]names
	sorted [2][]netip.Addr
}

func newAddrIndex() *addrIndex { return &addrIndex{owners: map[netip.Addr]names{}} }

func (x *addrIndex) add(a netip.Addr, node string) {
	ns, had := x.owners[a]
	x.owners[a] = ns.add(node)
	if had {
		return
	}
	f := family(a)
	i, _ := slices.BinarySearchFunc(x.sorted[f], a, netip.Addr.Compare)
	x.sorted[f] = slices.Insert(x.sorted[f], i, a)
}

func (x *addrIndex) remove(a netip.Addr, node string) {
	ns, ok := x.owners[a]
	if !ok {
		return
	}
	if ns = ns.remove(node); len(ns) > 0 {
		x.owners[a] = ns
		return
	}
	delete(x.owners, a)
	f := family(a)
	if i, found := slices.BinarySearchFunc(x.sorted[f], a, netip.Addr.Compare); found {
		x.sorted[f] = slices.Delete(x.sorted[f], i, i+1)
	}
}

// inside calls fn with every node whose address lies inside p.
func (x *addrIndex) inside(p netip.Prefix, fn func(string)) {
	p = p.Masked()
	s := x.sorted[family(p.Addr())]
	i, _ := slices.BinarySearchFunc(s, p.Addr(), netip.Addr.Compare)
	for ; i < len(s) && p.Contains(s[i]); i++ {
		for _, n := range x.owners[s[i]] {
			fn(n)
		}
	}
}
