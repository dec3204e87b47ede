package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
)

// AddRemote adds prefixes to the remote sets only, in one batch. The other
// sets, the chains and the rules are untouched. Prefixes already covered by
// an element are skipped; elements that a new prefix contains are replaced
// by it in the same batch (the kernel rejects overlapping intervals). A
// prefix that partly overlaps a hand-made range is an error: replacing the
// range would drop addresses from encryption.
func (m *Manager) AddRemote(ps []netip.Prefix) error {
	return m.updateRemote(ps, true)
}

// RemoveRemote removes prefixes from the remote sets only, in one batch. A
// prefix that is not an element (absent, or only part of a larger element)
// is skipped, so one stale prefix does not fail the whole call.
func (m *Manager) RemoveRemote(ps []netip.Prefix) error {
	return m.updateRemote(ps, false)
}

func (m *Manager) updateRemote(ps []netip.Prefix, add bool) error {
	op := "remove"
	if add {
		op = "add"
	}
	canon := canonical
	if add {
		canon = normalize
	}
	v4, v6, err := canon(ps)
	if err != nil {
		return fmt.Errorf("%s remote prefixes: %w", op, err)
	}
	if len(v4)+len(v6) == 0 {
		return nil
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()

	conn, err := m.conn()
	if err != nil {
		return err
	}
	defer m.release(conn.CloseLasting)
	ok, err := tableExists(conn, m.table)
	if err != nil {
		return fmt.Errorf("%s remote prefixes: %w", op, err)
	}
	if !ok {
		return fmt.Errorf("%s remote prefixes: table %s missing: %w", op, m.table.Name, ErrNotApplied)
	}
	sets, err := listSets(conn, m.table)
	if err != nil {
		return fmt.Errorf("%s remote prefixes: %w", op, err)
	}
	// Dropped now and set again only once this update is committed, so an
	// error anywhere leaves no cache behind.
	gc, genErr := m.genConn()
	var gen uint32
	if genErr == nil {
		defer m.release(gc.Close)
		gen, genErr = generation(gc)
	}
	prev := m.cache
	m.cache = nil
	var queued bool
	after := map[string][]nftables.SetElement{}
	for _, u := range []struct {
		name string
		ps   []netip.Prefix
	}{{SetRemote4, v4}, {SetRemote6, v6}} {
		if len(u.ps) == 0 {
			continue
		}
		set, ok := sets[u.name]
		if !ok {
			return fmt.Errorf("%s remote prefixes: set %s missing: %w", op, u.name, ErrNotApplied)
		}
		els, cached := prev.cachedElements(gen, set)
		if !cached || genErr != nil {
			if els, err = conn.GetSetElements(set); err != nil {
				return fmt.Errorf("%s remote prefixes: list elements of set %s: %w", op, set.Name, err)
			}
		}
		have := parseIntervals(els)
		var del, put []nftables.SetElement
		if add {
			del, put, err = planAdd(have, u.ps)
		} else {
			del = planRemove(have, u.ps)
		}
		if err != nil {
			return fmt.Errorf("%s remote prefixes: set %s: %w", op, u.name, err)
		}
		// Deletions first: a replaced element must be gone before its
		// container is inserted, or the kernel sees an overlap.
		if err := deleteElements(conn, set, del); err != nil {
			return fmt.Errorf("%s remote prefixes: set %s: %w", op, u.name, err)
		}
		if err := addElements(conn, set, put); err != nil {
			return fmt.Errorf("%s remote prefixes: set %s: %w", op, u.name, err)
		}
		queued = queued || len(del)+len(put) > 0
		after[u.name] = afterUpdate(els, del, put)
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("%s remote prefixes: %w", op, err)
	}
	// The cache holds what this update left only if the generation moved
	// by exactly this commit (or not at all when there was nothing to
	// commit): any other commit in between, and it is dropped.
	want := gen
	if queued {
		want++
	}
	if genErr != nil {
		return nil
	}
	if now, err := generation(gc); err == nil && now == want {
		if prev != nil && prev.gen == gen {
			for name, s := range prev.sets {
				if _, ok := after[name]; !ok {
					after[name] = s
				}
			}
		}
		m.cache = &setCache{gen: now, sets: after}
	}
	return nil
}

// planAdd decides which existing elements to delete and which to add so that
// every prefix in ps (normalised: disjoint) is covered.
func planAdd(have []interval, ps []netip.Prefix) (del, put []nftables.SetElement, err error) {
	for _, p := range ps {
		lo, hi := p.Addr(), lastAddr(p)
		covered := false
		var contained []interval
		for _, iv := range have {
			switch {
			case iv.hi.Compare(lo) < 0 || iv.lo.Compare(hi) > 0:
				// disjoint
			case iv.lo.Compare(lo) <= 0 && iv.hi.Compare(hi) >= 0:
				covered = true
			case iv.lo.Compare(lo) >= 0 && iv.hi.Compare(hi) <= 0:
				contained = append(contained, iv)
			default:
				return nil, nil, fmt.Errorf("%s partly overlaps existing range %s-%s", p, iv.lo, iv.hi)
			}
		}
		if covered {
			continue
		}
		for _, iv := range contained {
			del = append(del, iv.elements...)
		}
		put = append(put, prefixElements(p)...)
	}
	return del, put, nil
}

// planRemove returns the elements of every prefix in ps present exactly.
func planRemove(have []interval, ps []netip.Prefix) []nftables.SetElement {
	var del []nftables.SetElement
	for _, p := range ps {
		for _, iv := range have {
			if iv.isPrefix(p) {
				del = append(del, iv.elements...)
				break
			}
		}
	}
	return del
}
