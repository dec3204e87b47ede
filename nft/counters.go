package nft

import (
	"fmt"

	"github.com/google/nftables/expr"
)

// Counter is a rule's packet and byte count since the rule was created
// (every Apply recreates the table, and so resets them).
type Counter struct{ Packets, Bytes uint64 }

// Counters reads the counter of every commented rule in crosswire's table,
// keyed by rule comment. A missing table gives an empty map.
func (m *Manager) Counters() (map[string]Counter, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()

	conn, err := m.conn()
	if err != nil {
		return nil, err
	}
	defer m.release(conn.CloseLasting)
	out := map[string]Counter{}
	ok, err := tableExists(conn, m.table)
	if err != nil {
		return nil, wrapCounters(err)
	}
	if !ok {
		return out, nil
	}
	chains, err := listChains(conn, m.table)
	if err != nil {
		return nil, wrapCounters(err)
	}
	for _, name := range sortedKeys(chains) {
		rules, err := listRules(conn, m.table, chains[name])
		if err != nil {
			return nil, wrapCounters(err)
		}
		for _, r := range rules {
			comment := ruleComment(r)
			if comment == "" {
				continue
			}
			for _, e := range r.Exprs {
				if c, ok := e.(*expr.Counter); ok {
					out[comment] = Counter{Packets: c.Packets, Bytes: c.Bytes}
				}
			}
		}
	}
	return out, nil
}

func wrapCounters(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("counters: %w", err)
}
