package nft

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"go4.org/netipx"
)

// Planning an incremental update against a set's intervals, sorted and
// disjoint as parseIntervals returns them. Every lookup is a binary search,
// so that one prefix costs O(log n) whatever the size of the set: a Node
// event at 5000 nodes plans against 5000 intervals.

// plan is one incremental update of one set: the elements its batch deletes
// and adds, and the edits that turn the set's intervals into those the
// kernel holds once the batch is committed (so that the next update need
// not read or parse the set again).
type plan struct {
	del, put []nftables.SetElement
	edits    []edit // by position, disjoint
}

// edit replaces have[i:j] with iv, or with nothing if !add.
type edit struct {
	i, j int
	iv   interval
	add  bool
}

// planAdd plans covering every prefix in ps (normalised: sorted, disjoint).
// A prefix already covered by an interval is skipped; intervals it contains
// are deleted in the same batch (the kernel rejects overlapping intervals).
// A prefix that partly overlaps an interval (a hand-made range) is an error:
// replacing the range would drop addresses from encryption.
func planAdd(have []interval, ps []netip.Prefix) (plan, error) {
	var pl plan
	for _, p := range ps {
		lo, hi := p.Addr(), netipx.PrefixLastIP(p)
		i, j, covered, err := overlapping(have, lo, hi)
		if err != nil {
			return plan{}, fmt.Errorf("%s %w", p, err)
		}
		if covered {
			continue
		}
		for _, iv := range have[i:j] {
			pl.del = append(pl.del, iv.elements...)
		}
		els := prefixElements(p)
		pl.put = append(pl.put, els...)
		pl.edits = append(pl.edits, edit{i: i, j: j, iv: interval{lo: lo, hi: hi, elements: els}, add: true})
	}
	return pl, nil
}

// overlapping returns the intervals of have that overlap [lo, hi] as
// have[i:j] (consecutive, since have is sorted and disjoint; j == i where
// the range would go if none does), and whether one of them covers the range.
// An interval that neither covers nor lies within the range is an error.
func overlapping(have []interval, lo, hi netip.Addr) (i, j int, covered bool, err error) {
	i, _ = slices.BinarySearchFunc(have, lo, func(iv interval, a netip.Addr) int { return iv.hi.Compare(a) })
	for j = i; j < len(have) && have[j].lo.Compare(hi) <= 0; j++ {
		iv := &have[j]
		switch {
		case iv.lo.Compare(lo) <= 0 && iv.hi.Compare(hi) >= 0:
			covered = true
		case iv.lo.Compare(lo) >= 0 && iv.hi.Compare(hi) <= 0:
			// contained: replaced
		default:
			return 0, 0, false, fmt.Errorf("partly overlaps existing range %s-%s", iv.lo, iv.hi)
		}
	}
	return i, j, covered, nil
}

// planRemove plans deleting every prefix in ps (canonical: sorted, distinct)
// that is an interval exactly. Others are skipped, so that one stale prefix
// does not fail the whole update.
func planRemove(have []interval, ps []netip.Prefix) plan {
	var pl plan
	for _, p := range ps {
		k, found := slices.BinarySearchFunc(have, p.Addr(), func(iv interval, a netip.Addr) int { return iv.lo.Compare(a) })
		if found && have[k].isPrefix(p) {
			pl.del = append(pl.del, have[k].elements...)
			pl.edits = append(pl.edits, edit{i: k, j: k + 1})
		}
	}
	return pl
}

// apply returns have with the plan's edits made. A single edit (one prefix,
// the common case) is made in place, moving the tail of have rather than
// copying the whole list; have must not be used afterwards.
func (pl plan) apply(have []interval) []interval {
	switch len(pl.edits) {
	case 0:
		return have
	case 1:
		e := pl.edits[0]
		if e.add {
			return slices.Replace(have, e.i, e.j, e.iv)
		}
		return slices.Delete(have, e.i, e.j)
	}
	// Several edits in place would move the tail once each; one merge
	// into a new list stays linear however many prefixes the update has.
	out := make([]interval, 0, len(have)+len(pl.edits))
	r := 0
	for _, e := range pl.edits {
		out = append(out, have[r:e.i]...)
		if e.add {
			out = append(out, e.iv)
		}
		r = e.j
	}
	return append(out, have[r:]...)
}
