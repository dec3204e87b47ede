package wgtun

import (
	"bufio"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// uapiModel is a device as wireguard-go keeps it, reduced to what Diff
// writes: peers with an endpoint, and allowed IPs in one table where each
// prefix belongs to at most one peer (adding a prefix to a peer takes it
// from its previous owner; removing it from a peer that does not own it
// does nothing).
type uapiModel struct {
	self      Key // the device's own public key: lines for it are ignored
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

// apply runs the body of a UAPI set operation with the semantics of
// wireguard-go's IpcSetOperation (device/uapi.go, handlePublicKeyLine and
// handlePeerLine) for the peer keys Diff may use:
//   - public_key selects the peer, creating it (no endpoint, no allowed
//     IPs) when it does not exist; the device's own key selects a dummy
//     that every later line of the section leaves without effect;
//   - update_only=true undoes that creation: a peer created by this
//     section's public_key line is removed again and the section goes to
//     a dummy, so a peer that did not exist before is never created;
//   - remove=true removes the peer; the rest of its section has no effect;
//   - allowed_ip inserts a prefix (masked, taking it from its owner);
//     allowed_ip=-p removes p only if this peer owns exactly p;
//     replace_allowed_ips=true drops all of the peer's prefixes;
//   - a value wireguard-go rejects (update_only or remove other than
//     "true", a bad endpoint, keepalive or prefix) fails the operation,
//     which Diff must never cause.
func (m *uapiModel) apply(t *testing.T, text string) {
	t.Helper()
	var cur Key
	selected, dummy, created := false, false, false
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
			cur, selected, dummy, created = key, true, key == m.self, false
			if _, ok := m.endpoints[key]; !ok && !dummy {
				m.endpoints[key] = netip.AddrPort{}
				created = true
			}
			continue
		}
		if !selected {
			t.Fatalf("peer key %q before any public_key", k)
		}
		switch k {
		case "update_only":
			if v != "true" {
				t.Fatalf("update_only=%q: wireguard-go rejects anything but true", v)
			}
			if created && !dummy {
				m.removePeer(cur)
				dummy = true
			}
		case "remove":
			if v != "true" {
				t.Fatalf("remove=%q: wireguard-go rejects anything but true", v)
			}
			if !dummy {
				m.removePeer(cur)
			}
			dummy = true
		case "endpoint":
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				t.Fatalf("endpoint %q: %v", v, err)
			}
			if !dummy {
				m.endpoints[cur] = ap
			}
		case "persistent_keepalive_interval":
			if _, err := strconv.ParseUint(v, 10, 16); err != nil {
				t.Fatalf("persistent_keepalive_interval %q: %v", v, err)
			}
		case "replace_allowed_ips":
			if v != "true" {
				t.Fatalf("replace_allowed_ips=%q: wireguard-go rejects anything but true", v)
			}
			if !dummy {
				m.dropAllowedIPs(cur)
			}
		case "allowed_ip":
			remove := strings.HasPrefix(v, "-")
			p, err := netip.ParsePrefix(strings.TrimPrefix(v, "-"))
			if err != nil {
				t.Fatalf("allowed_ip %q: %v", v, err)
			}
			p = p.Masked()
			switch {
			case dummy:
			case remove:
				if o, ok := m.owner[p]; ok && o == cur {
					delete(m.owner, p)
				}
			default:
				m.owner[p] = cur
			}
		default:
			t.Fatalf("Diff wrote unexpected key %q", k)
		}
	}
}

func (m *uapiModel) removePeer(k Key) {
	delete(m.endpoints, k)
	m.dropAllowedIPs(k)
}

func (m *uapiModel) dropAllowedIPs(k Key) {
	for p, o := range m.owner {
		if o == k {
			delete(m.owner, p)
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
// Diff then has nothing to write. The vanished bits (one per key) take
// peers out of the device behind the caller's back, as a trim or a
// concurrent writer would: Diff against the stale view must not re-create
// them (update_only), and the next Diff, from what the device really
// holds, converges.
//
//	go test -run XXX -fuzz FuzzDiff -fuzztime 10s ./wgtun/
func FuzzDiff(f *testing.F) {
	f.Add([]byte{}, []byte{}, uint8(0))
	f.Add([]byte{0, 0, 1, 0, 0, 2, 1, 0}, []byte{0, 0, 1, 0, 0, 2, 2, 0}, uint8(0))       // endpoint and prefix change
	f.Add([]byte{0, 2, 1, 0, 1, 2, 2, 0}, []byte{1, 2, 1, 0, 0, 2, 2, 0}, uint8(0))       // prefixes swap owners
	f.Add([]byte{0, 2, 1, 0, 1, 1, 3, 7}, []byte{2, 2, 1, 0}, uint8(0))                   // peers removed, one added
	f.Add([]byte{3, 2, 1, 9, 3, 2, 1, 0}, []byte{3, 2, 1, 9, 3, 2, 1, 0, 3, 0}, uint8(0)) // unmasked duplicates
	f.Add([]byte{0, 0, 1, 0, 1, 2, 1, 0}, []byte{0, 0, 2, 0, 1, 2, 2, 0}, uint8(0b11))    // changed peers vanished
	f.Add([]byte{0, 2, 1, 0, 1, 2, 2, 0}, []byte{0, 2, 1, 0}, uint8(0b10))                // removed peer vanished
	f.Fuzz(func(t *testing.T, cb, db []byte, vanished uint8) {
		current, desired := peersFromBytes(cb), peersFromBytes(db)
		gone := map[Key]bool{}
		var held []Peer
		for _, p := range current {
			if vanished&(1<<(p.PublicKey[0]%8)) != 0 {
				gone[p.PublicKey] = true
				continue
			}
			held = append(held, p)
		}
		dev := newModel(held)
		endpoints := map[Key]netip.AddrPort{}
		for k, p := range indexPeers(held) {
			endpoints[k] = p.Endpoint
		}

		text := Diff(newModel(current).peers(), desired, 25)
		dev.apply(t, text)
		if got, want := dev.peers(), expectPeers(desired, endpoints, gone); !peersEqual(got, want) {
			t.Fatalf("current %v (vanished %v)\ndesired %v\nDiff:\n%s\ndevice now %v\nwant       %v", current, gone, desired, text, got, want)
		}

		// The device's real content: a vanished desired peer is created now.
		got := dev.peers()
		text = Diff(got, desired, 25)
		dev.apply(t, text)
		if got, want := dev.peers(), expectPeers(desired, endpoints, nil); !peersEqual(got, want) {
			t.Fatalf("second Diff from the device's content\ndesired %v\nDiff:\n%s\ndevice now %v\nwant       %v", desired, text, got, want)
		}
		if again := Diff(dev.peers(), desired, 25); again != "" {
			t.Fatalf("third Diff not empty:\n%s", again)
		}
	})
}

// expectPeers is desired as a device holds it after Diff: a peer without
// endpoint keeps the one the device had (none for a new peer), and the
// peers in absent are not there.
func expectPeers(desired []Peer, endpoints map[Key]netip.AddrPort, absent map[Key]bool) []Peer {
	var out []Peer
	for k, p := range indexPeers(desired) {
		if absent[k] {
			continue
		}
		if !p.Endpoint.IsValid() {
			p.Endpoint = endpoints[k]
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.PublicKey.hex(), b.PublicKey.hex()) })
	return out
}

func peersEqual(a, b []Peer) bool {
	return slices.EqualFunc(a, b, func(x, y Peer) bool {
		return x.PublicKey == y.PublicKey && x.Endpoint == y.Endpoint && slices.Equal(x.AllowedIPs, y.AllowedIPs)
	})
}
