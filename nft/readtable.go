package nft

import (
	"fmt"

	"github.com/google/nftables"
)

// readTable runs read on a fresh connection if crosswire's table exists
// and reports whether it did; what names the read in errors.
func (m *Manager) readTable(what string, read func(*nftables.Conn) error) (bool, error) {
	if err := m.lock(); err != nil {
		return false, err
	}
	defer m.mu.Unlock()

	conn, err := m.conn()
	if err != nil {
		return false, err
	}
	defer m.release(conn.CloseLasting)
	ok, err := tableExists(conn, m.table)
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	if !ok {
		return false, nil
	}
	if err := read(conn); err != nil {
		return true, fmt.Errorf("%s: %w", what, err)
	}
	return true, nil
}
