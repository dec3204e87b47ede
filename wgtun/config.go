package wgtun

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/device"
)

// Config describes the device Open creates.
type Config struct {
	Name       string // interface name, 1..15 characters, no '/', ':' or white space
	MTU        int    // 0 means wireguard-go's default (1420)
	ListenPort uint16 // 0 lets the kernel pick; see Device.ListenPort
	FwMark     uint32 // SO_MARK of the tunnel's UDP sockets (0 = none)
	PrivateKey Key
	// SocketDir holds the UAPI socket <SocketDir>/<Name>.sock. With
	// /var/run/wireguard, `wg show <Name>` talks to the device.
	SocketDir string
	Keepalive int // persistent keepalive seconds for every peer (0 = off)
	Logger    *zap.Logger

	// OnDemand configures a desired peer in wireguard-go only while it is
	// active: when a packet to one of its allowed IPs leaves through the
	// TUN, or a packet from its endpoint IP arrives. A peer idle for
	// IdleTimeout is removed again. An unconfigured peer costs no
	// wireguard-go memory or goroutines; see ondemand.go.
	OnDemand bool
	// IdleTimeout is how long an on-demand peer must be idle before it is
	// removed (default 5 minutes). Persistent keepalives count as traffic.
	IdleTimeout time.Duration

	// RequirePresharedKey creates every peer with a preshared key: the one
	// SetPresharedKey recorded, else a random one nobody knows, so that no
	// classical handshake succeeds with a peer before a post-quantum key
	// is agreed (psk.go).
	RequirePresharedKey bool
}

// defaultIdleTimeout is Tailscale's lazy-peer idle time: long enough that a
// peer talked to every few minutes stays configured.
const defaultIdleTimeout = 5 * time.Minute

// MTU limits: 576 is the IPv4 minimum every host must accept; 65535 is the
// IP total-length limit.
const (
	minMTU = 576
	maxMTU = 65535
)

// maxIfNameLen is IFNAMSIZ minus the terminating NUL.
const maxIfNameLen = 15

func (c Config) withDefaults() Config {
	if c.MTU == 0 {
		c.MTU = device.DefaultMTU
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.OnDemand && c.IdleTimeout == 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	switch {
	case c.Name == "" || len(c.Name) > maxIfNameLen:
		errs = append(errs, fmt.Errorf("interface name %q must be 1..%d characters", c.Name, maxIfNameLen))
	case c.Name == "." || c.Name == "..":
		errs = append(errs, fmt.Errorf("interface name %q is reserved", c.Name))
	case strings.ContainsAny(c.Name, "/: \t\n\r\v\f"):
		errs = append(errs, fmt.Errorf("interface name %q must not contain '/', ':' or white space", c.Name))
	}
	if c.MTU < minMTU || c.MTU > maxMTU {
		errs = append(errs, fmt.Errorf("MTU %d out of range %d..%d", c.MTU, minMTU, maxMTU))
	}
	if c.PrivateKey.IsZero() {
		errs = append(errs, errors.New("private key is zero"))
	}
	if c.SocketDir == "" {
		errs = append(errs, errors.New("UAPI socket directory is empty"))
	}
	if c.Keepalive < 0 || c.Keepalive > 65535 {
		errs = append(errs, fmt.Errorf("keepalive %d out of range 0..65535", c.Keepalive))
	}
	if c.IdleTimeout < 0 || (c.OnDemand && c.IdleTimeout == 0) {
		errs = append(errs, fmt.Errorf("idle timeout %v must be positive", c.IdleTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid wgtun config: %w", err)
	}
	return nil
}
