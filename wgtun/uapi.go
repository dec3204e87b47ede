package wgtun

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Peer is the configuration of one WireGuard peer.
type Peer struct {
	PublicKey  Key
	Endpoint   netip.AddrPort // zero = none
	AllowedIPs []netip.Prefix
}

// Diff returns the body of a UAPI "set" operation (no "set=1" header, no
// terminating blank line) that turns the peers in current into those in
// desired, touching nothing that is already right. Unchanged peers produce no
// text, so an empty string means there is nothing to write.
//
// Removed peers come first, then the rest, each group sorted by public key;
// allowed IPs are compared masked (as WireGuard stores them) and written in
// string order, removals before additions. A changed peer is written with
// update_only=true so that it is not re-created if it vanished in between,
// and allowed IPs are changed one by one (allowed_ip=-<prefix> removes one):
// never replace_allowed_ips, which would drop traffic to the peer's other
// prefixes for the length of the operation. A desired peer without endpoint
// leaves the device's endpoint alone (UAPI cannot clear one, and the device
// may have learnt it from the peer). keepalive is written for new peers only.
// If desired names a key twice, the last entry wins; Device.SetPeers rejects
// that case before calling Diff.
func Diff(current, desired []Peer, keepalive int) string {
	return diffIndexed(indexPeers(current), indexPeers(desired), keepalive)
}

// diffIndexed is Diff on peers already normalised and indexed by key. Only
// the peers that change are sorted: on a Node event that is one of
// thousands.
func diffIndexed(cur, want map[Key]Peer, keepalive int) string {
	var removed, touched []Key
	for k := range cur {
		if _, ok := want[k]; !ok {
			removed = append(removed, k)
		}
	}
	for k, w := range want {
		if c, ok := cur[k]; !ok || !samePeer(c, w) {
			touched = append(touched, k)
		}
	}
	sortKeys(removed)
	sortKeys(touched)

	var b strings.Builder
	for _, k := range removed {
		fmt.Fprintf(&b, "public_key=%s\nremove=true\n", k.hex())
	}
	for _, k := range touched {
		w := want[k]
		c, exists := cur[k]
		if !exists {
			fmt.Fprintf(&b, "public_key=%s\n", k.hex())
			if w.Endpoint.IsValid() {
				fmt.Fprintf(&b, "endpoint=%s\n", w.Endpoint)
			}
			if keepalive > 0 {
				fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", keepalive)
			}
			for _, p := range w.AllowedIPs {
				fmt.Fprintf(&b, "allowed_ip=%s\n", p)
			}
			continue
		}
		fmt.Fprintf(&b, "public_key=%s\nupdate_only=true\n", k.hex())
		if w.Endpoint.IsValid() && w.Endpoint != c.Endpoint {
			fmt.Fprintf(&b, "endpoint=%s\n", w.Endpoint)
		}
		for _, p := range c.AllowedIPs {
			if !slices.Contains(w.AllowedIPs, p) {
				fmt.Fprintf(&b, "allowed_ip=-%s\n", p)
			}
		}
		for _, p := range w.AllowedIPs {
			if !slices.Contains(c.AllowedIPs, p) {
				fmt.Fprintf(&b, "allowed_ip=%s\n", p)
			}
		}
	}
	return b.String()
}

// samePeer reports whether the device holding have already satisfies want:
// a desired peer without endpoint accepts any.
func samePeer(have, want Peer) bool {
	if want.Endpoint.IsValid() && want.Endpoint != have.Endpoint {
		return false
	}
	return slices.Equal(have.AllowedIPs, want.AllowedIPs)
}

// indexPeers normalises peers the way the device stores them, so that a
// round trip through the device compares equal: endpoints unmapped, prefixes
// masked, de-duplicated and sorted.
func indexPeers(peers []Peer) map[Key]Peer {
	m := make(map[Key]Peer, len(peers))
	for _, p := range peers {
		m[p.PublicKey] = normalizePeer(p)
	}
	return m
}

func normalizePeer(p Peer) Peer {
	if p.Endpoint.IsValid() {
		p.Endpoint = netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port())
	}
	ips := make([]netip.Prefix, 0, len(p.AllowedIPs))
	for _, pfx := range p.AllowedIPs {
		ips = append(ips, pfx.Masked())
	}
	sortPrefixes(ips)
	p.AllowedIPs = slices.Compact(ips)
	return p
}

func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
}

func sortKeys(keys []Key) {
	slices.SortFunc(keys, func(a, b Key) int { return bytes.Compare(a[:], b[:]) })
}

// deviceState is what a UAPI "get" reports, reduced to what crosswire uses.
type deviceState struct {
	ListenPort uint16
	FwMark     uint32
	Peers      []PeerStats // sorted by public key
}

// parseIpcGet parses the output of a UAPI "get" operation. Unknown keys are
// skipped so that a newer wireguard-go cannot break us.
func parseIpcGet(text string) (deviceState, error) {
	var st deviceState
	var cur *PeerStats
	var hsSec, hsNsec int64
	finish := func() {
		if cur == nil {
			return
		}
		if hsSec != 0 || hsNsec != 0 {
			cur.LastHandshake = time.Unix(hsSec, hsNsec)
		}
		sortPrefixes(cur.AllowedIPs)
		st.Peers = append(st.Peers, *cur)
		cur, hsSec, hsNsec = nil, 0, 0
	}

	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			break // end of operation
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return st, fmt.Errorf("uapi get line %d %q: missing '='", n, line)
		}
		var err error
		if key == "public_key" {
			finish()
			cur = &PeerStats{}
			cur.PublicKey, err = parseHexKey(val)
		} else if cur == nil {
			err = parseDeviceLine(&st, key, val)
		} else {
			err = parsePeerLine(cur, &hsSec, &hsNsec, key, val)
		}
		if err != nil {
			return st, fmt.Errorf("uapi get line %d %q: %w", n, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("read uapi get output: %w", err)
	}
	finish()
	slices.SortFunc(st.Peers, func(a, b PeerStats) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })
	return st, nil
}

func parseDeviceLine(st *deviceState, key, val string) error {
	switch key {
	case "listen_port":
		v, err := strconv.ParseUint(val, 10, 16)
		st.ListenPort = uint16(v)
		return err
	case "fwmark":
		v, err := strconv.ParseUint(val, 10, 32)
		st.FwMark = uint32(v)
		return err
	case "errno":
		if val != "0" {
			return fmt.Errorf("device reported errno %s", val)
		}
	}
	return nil
}

func parsePeerLine(p *PeerStats, hsSec, hsNsec *int64, key, val string) error {
	var err error
	switch key {
	case "endpoint":
		var ap netip.AddrPort
		ap, err = netip.ParseAddrPort(val)
		p.Endpoint = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case "allowed_ip":
		var pfx netip.Prefix
		pfx, err = netip.ParsePrefix(val)
		p.AllowedIPs = append(p.AllowedIPs, pfx)
	case "last_handshake_time_sec":
		*hsSec, err = strconv.ParseInt(val, 10, 64)
	case "last_handshake_time_nsec":
		*hsNsec, err = strconv.ParseInt(val, 10, 64)
	case "rx_bytes":
		p.RxBytes, err = strconv.ParseUint(val, 10, 64)
	case "tx_bytes":
		p.TxBytes, err = strconv.ParseUint(val, 10, 64)
	}
	return err
}
