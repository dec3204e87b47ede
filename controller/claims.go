package controller

import "net/netip"

// claims holds the pod CIDRs claimed so far in a Build, in claim order, and
// answers overlap and containment queries in time independent of their
// number: one map lookup per distinct prefix length in use instead of a
// scan of every claim. Every answer is the earliest claim that matches,
// exactly what a scan in claim order would return.
type claims struct {
	list []netip.Prefix
	// exact maps each claimed prefix to the index of its first claim.
	exact map[netip.Prefix]int
	// inside maps a claim truncated to a shorter query length q to the
	// earliest claim longer than q under it: the claims a query prefix
	// of length q contains.
	inside map[netip.Prefix]int
	// claimedLens and queryLens are the prefix lengths claimed and queried
	// so far, per family (index 0 IPv4, 1 IPv6).
	claimedLens, queryLens [2][]int
	claimedSeen, querySeen [2][129]bool
}

// newClaims returns an empty index sized for about n claims.
func newClaims(n int) *claims {
	return &claims{list: make([]netip.Prefix, 0, n), exact: make(map[netip.Prefix]int, n), inside: map[netip.Prefix]int{}}
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// add claims ps, after every earlier claim.
func (c *claims) add(ps []netip.Prefix) {
	for _, p := range ps {
		i := len(c.list)
		c.list = append(c.list, p)
		f := family(p.Addr())
		if _, ok := c.exact[p]; !ok {
			c.exact[p] = i
		}
		if !c.claimedSeen[f][p.Bits()] {
			c.claimedSeen[f][p.Bits()] = true
			c.claimedLens[f] = append(c.claimedLens[f], p.Bits())
		}
		for _, q := range c.queryLens[f] {
			c.index(p, i, q)
		}
	}
}

// index records claim p (number i) under its truncation to q when p is
// longer than q.
func (c *claims) index(p netip.Prefix, i, q int) {
	if p.Bits() <= q {
		return
	}
	k := netip.PrefixFrom(p.Addr(), q).Masked()
	if _, ok := c.inside[k]; !ok {
		c.inside[k] = i
	}
}

// overlaps returns the first prefix of ps that overlaps a claim, and the
// earliest claim it overlaps.
func (c *claims) overlaps(ps []netip.Prefix) (netip.Prefix, netip.Prefix, bool) {
	for _, x := range ps {
		best := -1
		// Claims that contain x (or equal it).
		if i, ok := c.within(x.Addr(), x.Bits()); ok {
			best = i
		}
		// Claims that x contains.
		if i, ok := c.inside[c.queryKey(x)]; ok && (best < 0 || i < best) {
			best = i
		}
		if best >= 0 {
			return x, c.list[best], true
		}
	}
	return netip.Prefix{}, netip.Prefix{}, false
}

// queryKey makes x's length a query length (indexing every claim under it
// the first time) and returns x as a key of inside.
func (c *claims) queryKey(x netip.Prefix) netip.Prefix {
	f, q := family(x.Addr()), x.Bits()
	if !c.querySeen[f][q] {
		c.querySeen[f][q] = true
		c.queryLens[f] = append(c.queryLens[f], q)
		for i, p := range c.list {
			if family(p.Addr()) == f {
				c.index(p, i, q)
			}
		}
	}
	return x.Masked()
}

// within returns the earliest claim of length at most maxBits that
// contains a.
func (c *claims) within(a netip.Addr, maxBits int) (int, bool) {
	best := -1
	for _, l := range c.claimedLens[family(a)] {
		if l > maxBits {
			continue
		}
		k, err := a.Prefix(l)
		if err != nil {
			continue
		}
		if i, ok := c.exact[k]; ok && (best < 0 || i < best) {
			best = i
		}
	}
	return best, best >= 0
}

// containsAddr returns the earliest claim that contains a.
func (c *claims) containsAddr(a netip.Addr) (netip.Prefix, bool) {
	if a.Zone() != "" {
		return netip.Prefix{}, false // as netip.Prefix.Contains
	}
	if i, ok := c.within(a, a.BitLen()); ok {
		return c.list[i], true
	}
	return netip.Prefix{}, false
}
