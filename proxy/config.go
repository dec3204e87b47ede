package proxy

import (
	"fmt"
	"time"
)

// Config is fixed for the life of an agent.
type Config struct {
	// Table is the routing table that holds one route per remote pod CIDR.
	Table int
	// RulePriority is the priority of the `fwmark Mark/Mask lookup Table`
	// rule; it must come before the main table's rule (32766).
	RulePriority int
	Mark, Mask   uint32
	// TunnelIface is the WireGuard device the routes point at.
	TunnelIface string
	// ResyncInterval is how often kernel state is compared with desired
	// state and repaired.
	ResyncInterval time.Duration
	// Strict routes a remote node's pod CIDRs into the tunnel as soon as
	// the node is known, before it has a key: until the peer exists
	// WireGuard (and the blackhole behind it) drops that traffic instead of
	// sending it in clear. The matching ingress drop is nft.Config.Strict.
	Strict bool
}

// Validate rejects configurations that would misroute traffic.
func (c Config) Validate() error {
	switch {
	case c.Table <= 0 || c.Table == 253 || c.Table == 254 || c.Table == 255 || c.Table >= 1<<31:
		return fmt.Errorf("routing table %d: must be positive and not default/main/local (253-255)", c.Table)
	case c.RulePriority <= 0 || c.RulePriority >= 32766:
		return fmt.Errorf("rule priority %d: must be in 1..32765 so it precedes the main table", c.RulePriority)
	case c.Mark == 0:
		return fmt.Errorf("mark must be non-zero")
	case c.Mark&^c.Mask != 0:
		return fmt.Errorf("mark %#x has bits outside mask %#x", c.Mark, c.Mask)
	case c.TunnelIface == "":
		return fmt.Errorf("tunnel interface name is empty")
	case c.ResyncInterval <= 0:
		return fmt.Errorf("resync interval must be positive")
	}
	return nil
}
