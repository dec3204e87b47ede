package nft

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Readback is what the last Drift read from the kernel besides the
// differences: the agent's status and metrics show it instead of reading
// the table again under the manager's lock.
type Readback struct {
	// At is when the table was read; zero before the first Drift.
	At time.Time
	// Sizes holds the number of prefixes in each of the table's sets, as
	// SetSizes counts them; a set missing from the kernel is absent.
	Sizes map[string]int
	// Counters holds the rule counters by comment, as Counters reads them.
	Counters map[string]Counter
}

// LastReadback returns what the last successful Drift read. It reads
// nothing and does not wait for the manager's lock.
func (m *Manager) LastReadback() Readback {
	if rb := m.last.Load(); rb != nil {
		return *rb
	}
	return Readback{}
}

// Drift reads the kernel back and compares crosswire's table and its
// guard with what Apply would program for st. Nil means in sync; otherwise
// each string is one human-readable difference (those of the guard name
// its table). The error is only for netlink failures (or a State that
// cannot be rendered). What it read is kept for LastReadback: the sizes of
// crosswire's own sets, the counters of both tables' rules.
func (m *Manager) Drift(st State) ([]string, error) {
	want, err := renderAll(m.cfg, st)
	if err != nil {
		return nil, fmt.Errorf("drift: render: %w", err)
	}
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()

	conn, err := m.conn()
	if err != nil {
		return nil, err
	}
	defer m.release(conn.CloseLasting)
	rb := &Readback{At: time.Now(), Sizes: map[string]int{}, Counters: map[string]Counter{}}
	var reasons []string
	for i, rs := range want {
		sizes, prefix := rb.Sizes, ""
		if i > 0 {
			sizes, prefix = nil, "table "+rs.Table.Name+": "
		}
		r, err := tableDrift(conn, rs, sizes, rb.Counters)
		if err != nil {
			return nil, fmt.Errorf("drift: %w", err)
		}
		for _, x := range r {
			if x != missingTable(rs.Table) {
				x = prefix + x
			}
			reasons = append(reasons, x)
		}
	}
	m.last.Store(rb)
	return reasons, nil
}

func missingTable(t *nftables.Table) string { return fmt.Sprintf("table %s missing", t.Name) }

// tableDrift compares one table with want, recording its set sizes in
// sizes (when not nil) and its rules' counters in counters.
func tableDrift(conn *nftables.Conn, want *Ruleset, sizes map[string]int, counters map[string]Counter) ([]string, error) {
	ok, err := tableExists(conn, want.Table)
	if err != nil {
		return nil, err
	}
	if !ok {
		return []string{missingTable(want.Table)}, nil
	}
	reasons, err := setsDrift(conn, want.Table, want.Sets, sizes)
	if err != nil {
		return nil, err
	}
	r, err := chainsDrift(conn, want.Table, want.Chains, counters)
	if err != nil {
		return nil, err
	}
	return append(reasons, r...), nil
}

// setsDrift compares the wanted sets with the kernel's and records their
// sizes in sizes, unless it is nil.
func setsDrift(conn *nftables.Conn, t *nftables.Table, want []SetSpec, sizes map[string]int) ([]string, error) {
	have, err := listSets(conn, t)
	if err != nil {
		return nil, err
	}
	var reasons []string
	for _, ws := range want {
		hs, ok := have[ws.Name]
		if !ok {
			reasons = append(reasons, fmt.Sprintf("set %s missing", ws.Name))
			continue
		}
		delete(have, ws.Name)
		if hs.KeyType.Name != ws.KeyType.Name || !hs.Interval || hs.IsMap {
			reasons = append(reasons, fmt.Sprintf("set %s: wrong type or flags (type %s, interval %t, map %t)", ws.Name, hs.KeyType.Name, hs.Interval, hs.IsMap))
			continue
		}
		ivs, err := readIntervals(conn, hs)
		if err != nil {
			return nil, err
		}
		var got []netip.Prefix
		for _, iv := range ivs {
			got = append(got, iv.prefixes()...)
		}
		if sizes != nil {
			sizes[ws.Name] = len(got)
		}
		missing, unexpected := diffPrefixes(ws.Prefixes, got)
		for _, p := range missing {
			reasons = append(reasons, fmt.Sprintf("set %s: missing %s", ws.Name, p))
		}
		for _, p := range unexpected {
			reasons = append(reasons, fmt.Sprintf("set %s: unexpected %s", ws.Name, p))
		}
	}
	for _, name := range sortedKeys(have) {
		reasons = append(reasons, fmt.Sprintf("set %s unexpected", name))
	}
	return reasons, nil
}

// diffPrefixes compares two prefix lists by membership: missing are the
// wanted prefixes got lacks, unexpected the got prefixes not wanted, each
// sorted (netip.Prefix.Compare). It runs on every resync under the
// manager's lock with one prefix per node in the larger sets, so it must
// not search one list per prefix of the other (quadratic: 54 ms at 5000
// prefixes): it merges the two sorted lists. Render sorts want; the
// kernel's intervals come in address order, the same order unless the
// set mixes prefix lengths, and only then is a copy sorted.
func diffPrefixes(want, got []netip.Prefix) (missing, unexpected []netip.Prefix) {
	if slices.Equal(want, got) {
		return nil, nil // in sync, the common case
	}
	return mergeDiff(sortedPrefixes(want), sortedPrefixes(got))
}

func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	if slices.IsSortedFunc(ps, netip.Prefix.Compare) {
		return ps
	}
	ps = slices.Clone(ps)
	slices.SortFunc(ps, netip.Prefix.Compare)
	return ps
}

// mergeDiff is diffPrefixes for two sorted lists. A prefix present on both
// sides is skipped with all its duplicates; one present on one side only
// is reported as often as it occurs there.
func mergeDiff(want, got []netip.Prefix) (missing, unexpected []netip.Prefix) {
	i, j := 0, 0
	for i < len(want) && j < len(got) {
		switch c := want[i].Compare(got[j]); {
		case c < 0:
			missing = append(missing, want[i])
			i++
		case c > 0:
			unexpected = append(unexpected, got[j])
			j++
		default:
			p := want[i]
			for i < len(want) && want[i] == p {
				i++
			}
			for j < len(got) && got[j] == p {
				j++
			}
		}
	}
	missing = append(missing, want[i:]...)
	unexpected = append(unexpected, got[j:]...)
	return missing, unexpected
}

// chainsDrift compares the wanted chains with the kernel's and records
// the counters of their rules in counters.
func chainsDrift(conn *nftables.Conn, t *nftables.Table, want []ChainSpec, counters map[string]Counter) ([]string, error) {
	have, err := listChains(conn, t)
	if err != nil {
		return nil, err
	}
	var reasons []string
	for _, wc := range want {
		hc, ok := have[wc.Name]
		if !ok {
			reasons = append(reasons, fmt.Sprintf("chain %s missing", wc.Name))
			continue
		}
		delete(have, wc.Name)
		if d := chainAttrDiff(hc, wc); d != "" {
			reasons = append(reasons, fmt.Sprintf("chain %s: %s", wc.Name, d))
		}
		rules, err := listRules(conn, t, hc)
		if err != nil {
			return nil, err
		}
		recordCounters(counters, rules)
		reasons = append(reasons, rulesDrift(wc, rules)...)
	}
	for _, name := range sortedKeys(have) {
		reasons = append(reasons, fmt.Sprintf("chain %s unexpected", name))
	}
	return reasons, nil
}

func chainAttrDiff(h *nftables.Chain, w ChainSpec) string {
	switch {
	case h.Hooknum == nil || h.Priority == nil:
		return "not a base chain"
	case *h.Hooknum != w.Hook || *h.Priority != w.Priority:
		return fmt.Sprintf("hook %d priority %d, want hook %d priority %d", *h.Hooknum, *h.Priority, w.Hook, w.Priority)
	case h.Type != w.Type:
		return fmt.Sprintf("type %s, want %s", h.Type, w.Type)
	case h.Policy == nil || *h.Policy != w.Policy:
		return "policy differs"
	}
	return ""
}

// rulesDrift matches rules by comment (their identity), then compares
// expressions and order.
func rulesDrift(wc ChainSpec, have []*nftables.Rule) []string {
	var reasons []string
	byComment := map[string]*nftables.Rule{}
	var order []string
	for _, r := range have {
		c := ruleComment(r)
		if _, dup := byComment[c]; dup || wc.rule(c) == nil {
			reasons = append(reasons, fmt.Sprintf("chain %s: unexpected rule (handle %d, comment %q)", wc.Name, r.Handle, c))
			continue
		}
		byComment[c] = r
		order = append(order, c)
	}
	var wantOrder []string
	for _, wr := range wc.Rules {
		hr, ok := byComment[wr.Comment]
		if !ok {
			reasons = append(reasons, fmt.Sprintf("chain %s: rule %q missing", wc.Name, wr.Comment))
			continue
		}
		wantOrder = append(wantOrder, wr.Comment)
		if !sameExprs(hr.Exprs, wr.Exprs) {
			reasons = append(reasons, fmt.Sprintf("chain %s: rule %q differs", wc.Name, wr.Comment))
		}
	}
	if slices.Equal(order, wantOrder) || len(order) != len(wantOrder) {
		return reasons
	}
	return append(reasons, fmt.Sprintf("chain %s: rules out of order", wc.Name))
}

func (c ChainSpec) rule(comment string) *RuleSpec {
	for i := range c.Rules {
		if c.Rules[i].Comment == comment {
			return &c.Rules[i]
		}
	}
	return nil
}

// sameExprs compares expressions as programmed with expressions as dumped,
// ignoring what the kernel legitimately changes: counter values and the
// batch-local set ID of a lookup.
func sameExprs(have, want []expr.Any) bool {
	want = slices.DeleteFunc(slices.Clone(want), notReadBack)
	if len(have) != len(want) {
		return false
	}
	for i := range have {
		if !reflect.DeepEqual(normalizedExpr(have[i]), normalizedExpr(want[i])) {
			return false
		}
	}
	return true
}

// notReadBack reports expressions that github.com/google/nftables programs
// but silently skips when it dumps a rule (rt and byteorder, used by the MSS
// clamp). Comparing without them still catches a rule that was edited by
// hand: what replaced them would be read back and change the list.
func notReadBack(e expr.Any) bool {
	switch e.(type) {
	case *expr.Rt, *expr.Byteorder:
		return true
	}
	return false
}

func normalizedExpr(e expr.Any) expr.Any {
	switch v := e.(type) {
	case *expr.Counter:
		return &expr.Counter{}
	case *expr.Lookup:
		c := *v
		c.SetID = 0
		return &c
	}
	return e
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
