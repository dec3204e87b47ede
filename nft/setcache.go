package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
)

// setCache is what incremental updates know of crosswire's tables (its
// own and the guard) without reading them: their set objects, and the intervals of the remote sets as the
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
	gen    uint32
	tables map[string]*tableCache // by table name: crosswire's table and its guard
}

// tableCache is what a setCache knows of one table.
type tableCache struct {
	sets      map[string]*nftables.Set // every set of the table, by name
	intervals map[string][]interval    // by set name; only sets that are cacheable
}

// validAt reports whether the cache describes the tables at generation gen.
func (c *setCache) validAt(gen uint32) bool { return c != nil && c.gen == gen }

func (c *setCache) table(name string) *tableCache {
	if c == nil {
		return nil
	}
	return c.tables[name]
}

// tableSets returns the sets of table t, from the cache if there is one (c
// valid at the current generation), else listed from the kernel.
func (c *setCache) tableSets(conn *nftables.Conn, t *nftables.Table) (map[string]*nftables.Set, error) {
	if tc := c.table(t.Name); tc != nil {
		return tc.sets, nil
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

// setIntervals returns the intervals of set in table t, from the cache if
// it has them (c valid at the current generation), else read from the
// kernel; and whether edits can keep them up to date after this update.
func (c *setCache) setIntervals(conn *nftables.Conn, t *nftables.Table, set *nftables.Set) (ivs []interval, keep bool, err error) {
	if tc := c.table(t.Name); tc != nil {
		if ivs, ok := tc.intervals[set.Name]; ok {
			return ivs, true, nil
		}
	}
	els, err := conn.GetSetElements(set)
	if err != nil {
		return nil, false, fmt.Errorf("list elements of set %s of table %s: %w", set.Name, t.Name, err)
	}
	ivs = parseIntervals(els)
	return ivs, cacheable(els, ivs), nil
}

// setUpdate is one set's part of a committed update: the intervals it was
// planned from and the plan.
type setUpdate struct {
	table, name string
	have        []interval
	plan        plan
	keep        bool // have can be edited into the kernel's state: see cacheable
}

// next returns the cache once updates are committed and the generation
// is gen: c (valid before them, or nil) with the updated sets' intervals
// edited; sets holds every updated table's sets, by table name. It reuses
// c and the interval lists; neither may be used after.
func (c *setCache) next(gen uint32, sets map[string]map[string]*nftables.Set, updates []setUpdate) *setCache {
	if c == nil {
		c = &setCache{tables: make(map[string]*tableCache, len(sets))}
	}
	c.gen = gen
	for name, s := range sets {
		if c.tables[name] == nil {
			c.tables[name] = &tableCache{sets: s, intervals: make(map[string][]interval, 2)}
		}
	}
	for _, u := range updates {
		tc := c.tables[u.table]
		if u.keep {
			tc.intervals[u.name] = u.plan.apply(u.have)
		} else {
			delete(tc.intervals, u.name)
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
