package cwcluster

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/crosswire/crosswire/test/netcluster"
)

// MarkCounters reads the packet counters of the rules in crosswire's table
// and its guard on a node, keyed by rule comment, with the nft binary an
// operator would use. A missing table has no counters.
func MarkCounters(n *netcluster.Node) (map[string]uint64, error) {
	out, err := netcluster.Exec(n.NS, "nft", "-j", "list", "ruleset")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Family  string                       `json:"family"`
				Table   string                       `json:"table"`
				Comment string                       `json:"comment"`
				Expr    []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("parse nft json: %w", err)
	}
	counters := map[string]uint64{}
	for _, item := range doc.Nftables {
		if item.Rule == nil || item.Rule.Family != "inet" || item.Rule.Table != NftTable && item.Rule.Table != NftGuardTable {
			continue
		}
		for _, ex := range item.Rule.Expr {
			if raw, ok := ex["counter"]; ok {
				var c struct{ Packets uint64 }
				if err := json.Unmarshal(raw, &c); err != nil {
					return nil, fmt.Errorf("parse counter: %w", err)
				}
				counters[item.Rule.Comment] = c.Packets
			}
		}
	}
	return counters, nil
}

// WG runs the wg tool against a node's UAPI socket. wg only looks in
// /var/run/wireguard, so unless the agents serve there, it runs in a
// private mount namespace with the node's socket directory mounted there:
// nothing on the host changes.
func (cw *Cluster) WG(n *netcluster.Node, args ...string) (string, error) {
	if cw.SocketDir(n) == HostSocketDir {
		return netcluster.Exec(n.NS, append([]string{"wg"}, args...)...)
	}
	const script = `mount -t tmpfs tmpfs /run && mkdir -p /run/wireguard && mount --bind "$0" /run/wireguard && exec wg "$@"`
	argv := append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", script, n.SocketDir}, args...)
	return netcluster.Exec(n.NS, argv...)
}

// WGPeer is one line of `wg show <iface> dump`.
type WGPeer struct {
	PresharedKey         string // "(none)" when the peer has none
	Endpoint, AllowedIPs string
	LatestHandshake      int64
	RxBytes, TxBytes     uint64
}

// WGPeers parses `wg show <iface> dump`, keyed by peer public key.
func (cw *Cluster) WGPeers(n *netcluster.Node) (map[string]WGPeer, error) {
	out, err := cw.WG(n, "show", cw.Iface(n), "dump")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	peers := map[string]WGPeer{}
	for _, l := range lines[1:] { // the first line is the interface
		f := strings.Split(l, "\t")
		if len(f) != 8 {
			return nil, fmt.Errorf("wg dump line %q", l)
		}
		var p WGPeer
		p.PresharedKey, p.Endpoint, p.AllowedIPs = f[1], f[2], f[3]
		if _, err := fmt.Sscan(f[4], &p.LatestHandshake); err != nil {
			return nil, fmt.Errorf("wg dump handshake %q: %w", f[4], err)
		}
		if _, err := fmt.Sscan(f[5]+" "+f[6], &p.RxBytes, &p.TxBytes); err != nil {
			return nil, fmt.Errorf("wg dump bytes %q: %w", l, err)
		}
		peers[f[0]] = p
	}
	return peers, nil
}
