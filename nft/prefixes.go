package nft

import (
	"fmt"
	"net/netip"
	"slices"
)

// normalize turns caller prefixes into what an interval set can hold: masked,
// IPv4-mapped IPv6 prefixes unmapped to IPv4, split by family, sorted,
// deduplicated, and without prefixes contained in another one (the kernel
// rejects overlapping intervals with EEXIST, and the container already
// matches every address of the contained prefix).
func normalize(ps []netip.Prefix) (v4, v6 []netip.Prefix, err error) {
	v4, v6, err = canonical(ps)
	return dropContained(v4), dropContained(v6), err
}

// canonical masks, unmaps, splits by family, sorts and deduplicates, but
// keeps nested prefixes (a removal names elements, containment is moot).
func canonical(ps []netip.Prefix) (v4, v6 []netip.Prefix, err error) {
	for _, p := range ps {
		if !p.IsValid() {
			return nil, nil, fmt.Errorf("invalid prefix %q", p)
		}
		p = unmap(p).Masked()
		if p.Addr().Is4() {
			v4 = append(v4, p)
		} else {
			v6 = append(v6, p)
		}
	}
	slices.SortFunc(v4, netip.Prefix.Compare)
	slices.SortFunc(v6, netip.Prefix.Compare)
	return slices.Compact(v4), slices.Compact(v6), nil
}

// unmap rewrites ::ffff:a.b.c.d/n (n >= 96) as a.b.c.d/(n-96): the kernel
// sees IPv4 packets in the ip sets, never as mapped IPv6 addresses, so a
// mapped prefix in an ip6 set would match nothing.
func unmap(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// dropContained sorts ps (one family, masked) and keeps only prefixes that are
// not contained in an earlier one. Sorted by address, then by length, a
// container always precedes what it contains, and kept prefixes are
// disjoint, so comparing with the last kept prefix is enough.
func dropContained(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, netip.Prefix.Compare)
	out := sorted[:1]
	for _, p := range sorted[1:] {
		last := out[len(out)-1]
		if last.Contains(p.Addr()) && last.Bits() <= p.Bits() {
			continue
		}
		out = append(out, p)
	}
	return out
}
