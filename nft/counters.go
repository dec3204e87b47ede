package nft

import (
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Counter is a rule's packet and byte count since the rule was created
// (every Apply recreates the table, and so resets them).
type Counter struct{ Packets, Bytes uint64 }

// Counters reads the counter of every commented rule in crosswire's table,
// keyed by rule comment. A missing table gives an empty map.
func (m *Manager) Counters() (map[string]Counter, error) {
	out := map[string]Counter{}
	_, err := m.readTable("counters", func(conn *nftables.Conn) error {
		chains, err := listChains(conn, m.table)
		if err != nil {
			return err
		}
		for _, name := range sortedKeys(chains) {
			rules, err := listRules(conn, m.table, chains[name])
			if err != nil {
				return err
			}
			recordCounters(out, rules)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
