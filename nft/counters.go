package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Counter is a rule's packet and byte count since the rule was created
// (every Apply recreates the table, and so resets them).
type Counter struct{ Packets, Bytes uint64 }

// Counters reads the counter of every commented rule in crosswire's table
// and its guard, keyed by rule comment (comments are unique across both).
// A missing table gives no counters.
func (m *Manager) Counters() (map[string]Counter, error) {
	out := map[string]Counter{}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	conn, err := m.conn()
	if err != nil {
		return nil, err
	}
	defer m.release(conn.CloseLasting)
	for _, t := range m.tables() {
		if err := tableCounters(conn, t, out); err != nil {
			return nil, fmt.Errorf("counters: %w", err)
		}
	}
	return out, nil
}

func tableCounters(conn *nftables.Conn, t *nftables.Table, out map[string]Counter) error {
	if ok, err := tableExists(conn, t); err != nil || !ok {
		return err
	}
	chains, err := listChains(conn, t)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(chains) {
		rules, err := listRules(conn, t, chains[name])
		if err != nil {
			return err
		}
		recordCounters(out, rules)
	}
	return nil
}

// recordCounters adds the counter of every commented rule to out.
func recordCounters(out map[string]Counter, rules []*nftables.Rule) {
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
