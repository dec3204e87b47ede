package nft

import "github.com/google/nftables"

// SetSizes reads back how many pod CIDRs each of crosswire's sets holds
// (local4, local6, remote4, remote6), counted as prefixes the way Drift
// reads them. A missing table gives an empty map; a missing set is absent.
func (m *Manager) SetSizes() (map[string]int, error) {
	out := map[string]int{}
	_, err := m.readTable("set sizes", func(conn *nftables.Conn) error {
		sets, err := listSets(conn, m.table)
		if err != nil {
			return err
		}
		for _, name := range []string{SetLocal4, SetLocal6, SetRemote4, SetRemote6} {
			s, ok := sets[name]
			if !ok {
				continue
			}
			ivs, err := readIntervals(conn, s)
			if err != nil {
				return err
			}
			n := 0
			for _, iv := range ivs {
				n += len(iv.prefixes())
			}
			out[name] = n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
