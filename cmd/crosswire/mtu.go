package main

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/crosswire/crosswire/proxy"
)

// fallbackMTU fits a 1500-byte underlay with either family's overhead; it
// is used only when the underlay cannot be read, and TCP stays safe through
// MSS clamping even where it is too large.
const fallbackMTU = 1420

// tunnelMTU returns the configured MTU, or derives it from the underlay
// (the default route's device) when configured as 0. Before any peer is
// known the agent cannot tell which family its endpoints use, so it takes
// the IPv6 overhead and keeps the IPv6 minimum: 1420 on a 1500 underlay,
// never a value that breaks one family.
func tunnelMTU(configured int, log *zap.Logger) (int, error) {
	if configured != 0 {
		return configured, nil
	}
	u, err := proxy.UnderlayMTU(nil, nil)
	if err != nil {
		log.Warn("cannot derive the tunnel MTU from the underlay; set --mtu", zap.Error(err), zap.Int("using", fallbackMTU))
		return fallbackMTU, nil
	}
	mtu, err := proxy.TunnelMTU(u, true, true)
	if err != nil {
		return 0, fmt.Errorf("auto MTU from underlay MTU %d: %w", u, err)
	}
	return mtu, nil
}
