package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
)

// setCache is what incremental updates know of crosswire's table without
// reading it: its set objects, and the intervals of the remote sets as the
// kernel holds them after the last update, parsed and sorted, ready for
// planning by binary search. It is valid for one ruleset generation. The
// kernel bumps the generation on every commit in the namespace, so while
// it is unchanged nothing (no Apply, no nft on the command line, no other
// process) can have touched the table, and the next update neither lists
// the table and its sets nor dumps and parses a set of thousands of
// elements, which grows with the cluster while the update itself is one
// prefix (in a large cluster that read was most of a Node event's cost).
// After its commit an update edits the intervals it planned from rather
// than rebuilding them, so one prefix costs O(log n) to plan and a move of
// the list's tail to record.
type setCache struct {
	gen       uint32
	sets      map[string]*nftables.Set // every set of the table, by name
	intervals map[string][]interval    // by set name; only sets that are cacheable
}

// validAt reports whether the cache describes the table at generation gen.
func (c *setCache) validAt(gen uint32) bool { return c != nil && c.gen == gen }

// tableSets returns the table's sets, from the cache if there is one (c
// valid at the current generation), else listed from the kernel.
func (c *setCache) tableSets(conn *nftables.Conn, t *nftables.Table) (map[string]*nftables.Set, error) {
	if c != nil {
		return c.sets, nil
	}
	ok, err := tableExists(conn, t)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("table %s missing: %w", t.Name, ErrNotApplied)
	}
	return listSets(conn, t)
}

// setIntervals returns the intervals of set, from the cache if it has them
// (c valid at the current generation), else read from the kernel; and
// whether edits can keep them up to date after this update.
func (c *setCache) setIntervals(conn *nftables.Conn, set *nftables.Set) (ivs []interval, keep bool, err error) {
	if c != nil {
		if ivs, ok := c.intervals[set.Name]; ok {
			return ivs, true, nil
		}
	}
	els, err := conn.GetSetElements(set)
	if err != nil {
		return nil, false, fmt.Errorf("list elements of set %s: %w", set.Name, err)
	}
	ivs = parseIntervals(els)
	return ivs, cacheable(els, ivs), nil
}

// setUpdate is one set's part of a committed update: the intervals it was
// planned from and the plan.
type setUpdate struct {
	name string
	have []interval
	plan plan
	keep bool // have can be edited into the kernel's state: see cacheable
}

// next returns the cache once updates are committed and the generation
// is gen: c (valid before them, or nil) with the updated sets' intervals
// edited. It reuses c and the interval lists; neither may be used after.
func (c *setCache) next(gen uint32, sets map[string]*nftables.Set, updates []setUpdate) *setCache {
	if c == nil {
		c = &setCache{sets: sets, intervals: make(map[string][]interval, 2)}
	}
	c.gen = gen
	for _, u := range updates {
		if u.keep {
			c.intervals[u.name] = u.plan.apply(u.have)
		} else {
			delete(c.intervals, u.name)
		}
	}
	return c
}

// cacheable reports whether deleting and inserting whole intervals in ivs,
// parsed from els, gives what parsing the set reads after the same update.
// It does when every interval is encoded as prefixElements encodes one
// (nft writes ranges that way too): each element belongs to an interval,
// and only an interval that runs to the top of the address space lacks an
// end element. An element outside that scheme changes what its neighbours
// match when they change: a start without an end runs on to whichever start
// follows, an end without a start cuts short an interval inserted around
// it. Only a hand (another netlink writer) makes such elements; a set with
// any is read afresh by every update until they are gone. An end element at
// the lowest address cuts nothing short and is ignored.
func cacheable(els []nftables.SetElement, ivs []interval) bool {
	n := 0
	for _, e := range els {
		a, ok := netip.AddrFromSlice(e.Key)
		if !ok {
			return false
		}
		if !e.IntervalEnd || !a.IsUnspecified() {
			n++
		}
	}
	for i, iv := range ivs {
		n -= len(iv.elements)
		if len(iv.elements) == 1 && (i != len(ivs)-1 || iv.hi.Next().IsValid()) {
			return false
		}
	}
	return n == 0
}
