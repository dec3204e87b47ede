package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
)

// Read-back of crosswire's table. Every lookup goes through dumps filtered
// here by table name: the library's by-name getters fail with opaque errors
// when an object is missing, and missing is a normal answer for Drift.

func tableExists(conn *nftables.Conn, t *nftables.Table) (bool, error) {
	tables, err := conn.ListTablesOfFamily(t.Family)
	if err != nil {
		return false, fmt.Errorf("list tables: %w", err)
	}
	for _, kt := range tables {
		if kt.Name == t.Name {
			return true, nil
		}
	}
	return false, nil
}

func listSets(conn *nftables.Conn, t *nftables.Table) (map[string]*nftables.Set, error) {
	sets, err := conn.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("list sets of table %s: %w", t.Name, err)
	}
	out := make(map[string]*nftables.Set, len(sets))
	for _, s := range sets {
		out[s.Name] = s
	}
	return out, nil
}

func readIntervals(conn *nftables.Conn, s *nftables.Set) ([]interval, error) {
	els, err := conn.GetSetElements(s)
	if err != nil {
		return nil, fmt.Errorf("list elements of set %s: %w", s.Name, err)
	}
	return parseIntervals(els), nil
}

func listChains(conn *nftables.Conn, t *nftables.Table) (map[string]*nftables.Chain, error) {
	chains, err := conn.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	out := map[string]*nftables.Chain{}
	for _, c := range chains {
		if c.Table != nil && c.Table.Name == t.Name {
			out[c.Name] = c
		}
	}
	return out, nil
}

func listRules(conn *nftables.Conn, t *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error) {
	rules, err := conn.GetRules(t, c)
	if err != nil {
		return nil, fmt.Errorf("list rules of chain %s: %w", c.Name, err)
	}
	return rules, nil
}

func ruleComment(r *nftables.Rule) string {
	c, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return c
}
