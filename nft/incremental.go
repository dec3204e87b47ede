package nft

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
)

// AddRemote adds prefixes to the remote sets only (crosswire's table's
// and the guard's), in one batch. The other
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

func (m *Manager) updateRemote(ps []netip.Prefix, add bool) (err error) {
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

	conn, err := m.updateConn()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// Queued messages, a kept serialisation error or unread acks
			// must not reach the next update: it gets a new socket.
			m.dropUpdateConn()
		}
	}()
	// Dropped now and set again only once this update is committed, so an
	// error anywhere leaves no cache behind. Read before anything else:
	// the cache, and whatever this update reads, describe the sets at gen.
	prev := m.cache
	m.cache = nil
	gen, genErr := m.generation()
	if genErr != nil || !prev.validAt(gen) {
		prev = nil
	}
	// The same edit to crosswire's table and to its guard, in one batch:
	// the guard's sets never lag the marking sets.
	sets := make(map[string]map[string]*nftables.Set, 2)
	var updates []setUpdate
	queued := false
	for _, t := range m.tables() {
		ts, err := prev.tableSets(conn, t)
		if err != nil {
			return fmt.Errorf("%s remote prefixes: %w", op, err)
		}
		sets[t.Name] = ts
		for _, u := range [...]struct {
			name string
			ps   []netip.Prefix
		}{{SetRemote4, v4}, {SetRemote6, v6}} {
			if len(u.ps) == 0 {
				continue
			}
			set, ok := ts[u.name]
			if !ok {
				return fmt.Errorf("%s remote prefixes: set %s of table %s missing: %w", op, u.name, t.Name, ErrNotApplied)
			}
			have, keep, err := prev.setIntervals(conn, t, set)
			if err != nil {
				return fmt.Errorf("%s remote prefixes: %w", op, err)
			}
			var pl plan
			if add {
				pl, err = planAdd(have, u.ps)
			} else {
				pl = planRemove(have, u.ps)
			}
			if err != nil {
				return fmt.Errorf("%s remote prefixes: set %s of table %s: %w", op, u.name, t.Name, err)
			}
			// Deletions first: a replaced element must be gone before its
			// container is inserted, or the kernel sees an overlap.
			if err := deleteElements(conn, set, pl.del); err != nil {
				return fmt.Errorf("%s remote prefixes: set %s of table %s: %w", op, u.name, t.Name, err)
			}
			if err := addElements(conn, set, pl.put); err != nil {
				return fmt.Errorf("%s remote prefixes: set %s of table %s: %w", op, u.name, t.Name, err)
			}
			queued = queued || len(pl.del)+len(pl.put) > 0
			updates = append(updates, setUpdate{table: t.Name, name: u.name, have: have, plan: pl, keep: keep})
		}
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
	if now, err := m.generation(); err == nil && now == want {
		m.cache = prev.next(now, sets, updates)
	}
	return nil
}

// updateConn returns the socket incremental updates share. It stays open
// between updates because closing a netfilter socket is what costs: the
// kernel's NETLINK_URELEASE handler (nft_rcv_nl_event) flushes the pending
// release of whatever earlier commits deleted, an RCU grace period, under
// the commit mutex. With one socket per update, closed later in the
// background, a steady stream of Node events still paid that wait on some
// other update's commit, even in a small cluster (docs/benchmarks.md has
// the figures). Caller holds m.mu.
func (m *Manager) updateConn() (*nftables.Conn, error) {
	if m.updConn == nil {
		c, err := m.conn()
		if err != nil {
			return nil, err
		}
		m.updConn = c
	}
	return m.updConn, nil
}

// dropUpdateConn hands the shared update socket to release; the next
// update opens a new one. Caller holds m.mu.
func (m *Manager) dropUpdateConn() {
	if m.updConn != nil {
		m.release(m.updConn.CloseLasting)
		m.updConn = nil
	}
}
