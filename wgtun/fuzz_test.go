package wgtun

import (
	"bufio"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// uapiModel is a device as wireguard-go keeps it, reduced to what Diff
// writes: peers with an endpoint, and allowed IPs in one table where each
// prefix belongs to at most one peer (adding a prefix to a peer takes it
// from its previous owner; removing it from a peer that does not own it
// does nothing).
type uapiModel struct {
	endpoints map[Key]netip.AddrPort
	owner     map[netip.Prefix]Key
}

func newModel(peers []Peer) *uapiModel {
	m := &uapiModel{endpoints: map[Key]netip.AddrPort{}, owner: map[netip.Prefix]Key{}}
	for _, p := range peers {
		m.endpoints[p.PublicKey] = p.Endpoint
		for _, a := range p.AllowedIPs {
			m.owner[a.Masked()] = p.PublicKey
		}
	}
	return m
}

// apply runs the body of a UAPI set operation, as wireguard-go's
// IpcSetOperation does for the keys Diff uses.
func (m *uapiModel) apply(t *testing.T, text string) {
	t.Helper()
	var cur *Key
	skip := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			t.Fatalf("line %q without '='", sc.Text())
		}
		if k == "public_key" {
			key, err := parseHexKey(v)
			if err != nil {
				t.Fatalf("public_key %q: %v", v, err)
			}
			cur, skip = &key, false
			if _, ok := m.endpoints[key]; !ok {
				m.endpoints[key] = netip.AddrPort{}
			}
			continue
		}
		if cur == nil {
			t.Fatalf("peer key %q before any public_key", k)
		}
		if skip {
			continue
		}
		switch k {
		case "remove":
			delete(m.endpoints, *cur)
			for p, o := range m.owner {
				if o == *cur {
					delete(m.owner, p)
				}
			}
			skip = true
		case "update_only":
			// The peer exists in this model whenever Diff says update_only.
		case "endpoint":
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				t.Fatalf("endpoint %q: %v", v, err)
			}
			m.endpoints[*cur] = ap
		case "persistent_keepalive_interval":
		case "allowed_ip":
			remove := strings.HasPrefix(v, "-")
			p, err := netip.ParsePrefix(strings.TrimPrefix(v, "-"))
			if err != nil {
				t.Fatalf("allowed_ip %q: %v", v, err)
			}
			p = p.Masked()
			if remove {
				if m.owner[p] == *cur {
					delete(m.owner, p)
				}
			} else {
				m.owner[p] = *cur
			}
		default:
			t.Fatalf("Diff wrote unexpected key %q", k)
		}
	}
}

func (m *uapiModel) peers() []Peer {
	var out []Peer
	for k, ep := range m.endpoints {
		p := Peer{PublicKey: k, Endpoint: ep}
		for pfx, o := range m.owner {
			if o == k {
				p.AllowedIPs = append(p.AllowedIPs, pfx)
			}
		}
		out = append(out, normalizePeer(p))
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.PublicKey.hex(), b.PublicKey.hex()) })
	return out
}

// peersFromBytes makes peers from fuzz input: few distinct keys and
// prefixes, so that peers and prefixes collide often. Every prefix is held
// by one peer at most, as in a device (and in crosswire's desired state).
func peersFromBytes(b []byte) []Peer {
	byKey := map[Key]*Peer{}
	var order []Key
	taken := map[netip.Prefix]bool{}
	for len(b) >= 4 {
		rec := b[:4]
		b = b[4:]
		k := Key{rec[0] % 6, 0xaa}
		p, ok := byKey[k]
		if !ok {
			p = &Peer{PublicKey: k}
			byKey[k] = p
			order = append(order, k)
		}
		switch rec[1] % 4 {
		case 0: // endpoint
			p.Endpoint = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, 77, rec[2] % 4}), 51820+uint16(rec[3]%2))
		case 1: // IPv6 allowed IP
			a := netip.AddrFrom16([16]byte{0xfd, 0, 0, rec[2] % 8, 15: rec[3]})
			pfx := netip.PrefixFrom(a, 24+int(rec[3]%3)*40)
			if !taken[pfx.Masked()] {
				taken[pfx.Masked()] = true
				p.AllowedIPs = append(p.AllowedIPs, pfx) // unmasked on purpose
			}
		default: // IPv4 allowed IP
			pfx := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, rec[2] % 8, rec[3]}), 16+int(rec[3]%3)*8)
			if !taken[pfx.Masked()] {
				taken[pfx.Masked()] = true
				p.AllowedIPs = append(p.AllowedIPs, pfx)
			}
		}
	}
	out := make([]Peer, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out
}

// FuzzDiff: for random current and desired peers, writing Diff(current,
// desired) to a device that holds current leaves it holding desired
// (endpoints a desired peer leaves unset stay as they were), and a second
// Diff then has nothing to write.
//
//	go test -run XXX -fuzz FuzzDiff -fuzztime 10s ./wgtun/
func FuzzDiff(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add([]byte{0, 0, 1, 0, 0, 2, 1, 0}, []byte{0, 0, 1, 0, 0, 2, 2, 0})       // endpoint and prefix change
	f.Add([]byte{0, 2, 1, 0, 1, 2, 2, 0}, []byte{1, 2, 1, 0, 0, 2, 2, 0})       // prefixes swap owners
	f.Add([]byte{0, 2, 1, 0, 1, 1, 3, 7}, []byte{2, 2, 1, 0})                   // peers removed, one added
	f.Add([]byte{3, 2, 1, 9, 3, 2, 1, 0}, []byte{3, 2, 1, 9, 3, 2, 1, 0, 3, 0}) // unmasked duplicates
	f.Fuzz(func(t *testing.T, cb, db []byte) {
		current, desired := peersFromBytes(cb), peersFromBytes(db)
		dev := newModel(current)
		text := Diff(dev.peers(), desired, 25)
		dev.apply(t, text)

		want := indexPeers(desired)
		before := indexPeers(current)
		var wantPeers []Peer
		for k, p := range want {
			if !p.Endpoint.IsValid() {
				p.Endpoint = before[k].Endpoint // left alone
			}
			wantPeers = append(wantPeers, p)
		}
		slices.SortFunc(wantPeers, func(a, b Peer) int { return strings.Compare(a.PublicKey.hex(), b.PublicKey.hex()) })
		got := dev.peers()
		if !peersEqual(got, wantPeers) {
			t.Fatalf("current %v\ndesired %v\nDiff:\n%s\ndevice now %v\nwant       %v", current, desired, text, got, wantPeers)
		}
		if again := Diff(got, desired, 25); again != "" {
			t.Fatalf("second Diff not empty:\n%s", again)
		}
	})
}

func peersEqual(a, b []Peer) bool {
	return slices.EqualFunc(a, b, func(x, y Peer) bool {
		return x.PublicKey == y.PublicKey && x.Endpoint == y.Endpoint && slices.Equal(x.AllowedIPs, y.AllowedIPs)
	})
}
