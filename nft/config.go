package nft

import (
	"errors"
	"fmt"
	"net/netip"
)

// DefaultTable is the table name used when Config.Table is empty.
const DefaultTable = "crosswire"

// Kernel limits: NFT_NAME_MAXLEN (256, including the NUL) and IFNAMSIZ (16,
// including the NUL). Checking them here turns an opaque EINVAL from the
// middle of a batch into a start-up error.
const (
	maxNameLen  = 255
	maxIfaceLen = 15
)

// Config is fixed for the life of an agent.
type Config struct {
	Table       string // nftables table name, family inet; default "crosswire"
	Mark        uint32 // bits set on marked packets (must be non-zero and ⊆ Mask)
	Mask        uint32 // the mark bits crosswire owns
	TunnelIface string // wireguard TUN name, e.g. "crosswire0"
	// Strict adds the ingress drop rules (CommentStrictIngress4/6): a
	// packet from a remote pod CIDR to a local pod that did not come out of
	// the tunnel was sent in clear and is dropped.
	Strict bool
	// ClusterCIDRs are the cluster's pod address ranges (every node's pod
	// CIDR lies inside one). In strict mode the guard table drops a local
	// pod's traffic to any address in them that is not local and does not
	// leave by the tunnel: a pod CIDR this node does not know yet (a Node
	// that joined while the agent was down or could not apply) is not
	// reached in clear. Ignored without Strict.
	ClusterCIDRs []netip.Prefix
}

// withDefaults fills the fields that have a documented default.
func (c Config) withDefaults() Config {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	return c
}

// Validate reports whether the configuration can be programmed. An empty
// Table is valid and means DefaultTable.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Table)+len(GuardSuffix) > maxNameLen {
		errs = append(errs, fmt.Errorf("table name %q longer than %d bytes (its guard table adds %q)", c.Table, maxNameLen-len(GuardSuffix), GuardSuffix))
	}
	if c.Mark == 0 {
		errs = append(errs, errors.New("mark must be non-zero"))
	}
	if c.Mark&^c.Mask != 0 {
		errs = append(errs, fmt.Errorf("mark %#x is not within mask %#x (extra bits %#x)", c.Mark, c.Mask, c.Mark&^c.Mask))
	}
	switch {
	case c.TunnelIface == "":
		errs = append(errs, errors.New("tunnel interface name must not be empty"))
	case len(c.TunnelIface) > maxIfaceLen:
		errs = append(errs, fmt.Errorf("tunnel interface name %q longer than %d bytes", c.TunnelIface, maxIfaceLen))
	}
	if _, _, err := normalize(c.ClusterCIDRs); err != nil {
		errs = append(errs, fmt.Errorf("cluster CIDRs: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid nft config: %w", err)
	}
	return nil
}
