package nft

import "fmt"

// SetSizes reads back how many pod CIDRs each of crosswire's sets holds
// (local4, local6, remote4, remote6), counted as prefixes the way Drift
// reads them. A missing table gives an empty map; a missing set is absent.
func (m *Manager) SetSizes() (map[string]int, error) {
	if err := m.lock(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()

	conn, err := m.conn()
	if err != nil {
		return nil, err
	}
	defer m.release(conn.CloseLasting)
	out := map[string]int{}
	ok, err := tableExists(conn, m.table)
	if err != nil {
		return nil, fmt.Errorf("set sizes: %w", err)
	}
	if !ok {
		return out, nil
	}
	sets, err := listSets(conn, m.table)
	if err != nil {
		return nil, fmt.Errorf("set sizes: %w", err)
	}
	for _, name := range []string{SetLocal4, SetLocal6, SetRemote4, SetRemote6} {
		s, ok := sets[name]
		if !ok {
			continue
		}
		ivs, err := readIntervals(conn, s)
		if err != nil {
			return nil, fmt.Errorf("set sizes: %w", err)
		}
		n := 0
		for _, iv := range ivs {
			n += len(iv.prefixes())
		}
		out[name] = n
	}
	return out, nil
}
