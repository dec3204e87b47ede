package proxy

import (
	"net/netip"
	"slices"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/wgtun"
)

// Peer is one remote node.
type Peer struct {
	Name string
	// PublicKey is zero while the node has not published a key; such a peer
	// gets no WireGuard peer. Its pods stay on the plain route, or in strict
	// mode are marked and routed into the tunnel anyway, where nothing
	// accepts them: dropped, never sent in clear.
	PublicKey wgtun.Key
	Endpoint  netip.AddrPort
	PodCIDRs  []netip.Prefix
	// PQPort is the node's post-quantum key-exchange port
	// (crosswire.dev/pq-port); 0: no post-quantum support. The engine does
	// not use it; the agent's key manager does.
	PQPort uint16
}

// Desired is the datapath state the engine converges to.
type Desired struct {
	Local []netip.Prefix
	Peers []Peer

	// strict is Config.Strict, set by Engine.Update: keyless peers' pod
	// CIDRs are remote too.
	strict bool
}

// remote lists the pod CIDRs that must be marked and routed into the
// tunnel (with the blackhole behind), sorted and without duplicates: those
// of peers with a key, and in strict mode those of every known peer.
func (d *Desired) remote() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range d.Peers {
		out = append(out, remotePrefixes(p, d.strict)...)
	}
	return sortPrefixes(out)
}

// remotePrefixes are the pod CIDRs of p that are marked: all of them for a
// peer with a key, and in strict mode for every peer.
func remotePrefixes(p Peer, strict bool) []netip.Prefix {
	if p.PublicKey.IsZero() && !strict {
		return nil
	}
	return p.PodCIDRs
}

func (d *Desired) tunnelPeers() []wgtun.Peer {
	out := make([]wgtun.Peer, 0, len(d.Peers))
	for _, p := range d.Peers {
		if tp, ok := tunnelPeer(p); ok {
			out = append(out, tp)
		}
	}
	return out
}

// tunnelPeer is p as a WireGuard peer; a keyless peer is none.
func tunnelPeer(p Peer) (wgtun.Peer, bool) {
	if p.PublicKey.IsZero() {
		return wgtun.Peer{}, false
	}
	return wgtun.Peer{PublicKey: p.PublicKey, Endpoint: p.Endpoint, AllowedIPs: slices.Clone(p.PodCIDRs)}, true
}

func (d *Desired) nftState() nft.State {
	return nft.State{Local: sortPrefixes(slices.Clone(d.Local)), Remote: d.remote()}
}

// sortPrefixes sorts ps in place in netip's order (family, address,
// length) and drops duplicates.
func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, netip.Prefix.Compare)
	return slices.Compact(ps)
}

// minus returns the prefixes of a that are not in b, in a's order. It runs
// on every apply over every remote prefix, so it must stay linear: a scan
// of b per prefix of a makes every Node event quadratic in the cluster's
// size.
func minus(a, b []netip.Prefix) []netip.Prefix {
	if len(a) == 0 {
		return nil
	}
	in := make(map[netip.Prefix]struct{}, len(b))
	for _, p := range b {
		in[p] = struct{}{}
	}
	var out []netip.Prefix
	for _, p := range a {
		if _, ok := in[p]; !ok {
			out = append(out, p)
		}
	}
	return out
}
