package proxy

import (
	"net/netip"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/wgtun"
)

// Ruleset is crosswire's nftables table (nft.Manager).
type Ruleset interface {
	Apply(nft.State) error
	AddRemote([]netip.Prefix) error
	RemoveRemote([]netip.Prefix) error
	Drift(nft.State) ([]string, error)
	Delete() error
}

// Tunnel is the WireGuard device (wgtun.Device).
type Tunnel interface {
	// SetPeers changes the peers from what the tunnel's last write left:
	// cheap enough for every Node event, blind to changes made by others.
	SetPeers([]wgtun.Peer) error
	// SyncPeers reads the device back and repairs every difference; it
	// describes what it found ("" if nothing) for the drift log.
	SyncPeers([]wgtun.Peer) (string, error)
	Stats() ([]wgtun.PeerStats, error)
}

// peerUpdater is implemented by tunnels that can change a few peers
// without being given all of them (wgtun.Device.UpdatePeers).
type peerUpdater interface {
	UpdatePeers(upsert []wgtun.Peer, remove []wgtun.Key) error
}

// handshaker is implemented by tunnels that can start handshakes on demand;
// after a restart that turns a ~15 s stale-session blackout into one RTT.
type handshaker interface {
	InitiateHandshakes()
}

// Router owns the policy rule and the routes in crosswire's table
// (NetlinkRouter in production, a fake in tests).
type Router interface {
	// EnsureRule installs the fwmark rule; it reports whether it had to.
	EnsureRule() (bool, error)
	// Routes lists the remote prefixes whose tunnel and fail-closed
	// blackhole routes are both present, and those with anything of ours
	// present at all.
	Routes() (complete, any []netip.Prefix, err error)
	AddRoutes([]netip.Prefix) error
	DelRoutes([]netip.Prefix) error
	// DeleteAll removes the rule and every route crosswire created.
	DeleteAll() error
}
