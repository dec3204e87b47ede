package wgtun

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestSetPeersRecordMatchesDevice cycles the device through random peer
// sets in random order, alternating the record-based SetPeers and the
// read-back SyncPeers, and checks after every step that the device holds
// exactly what was asked: the record SetPeers diffs against must never
// drift from the device it stands for.
func TestSetPeersRecordMatchesDevice(t *testing.T) {
	needRootForTUN(t)
	d := benchDevice(t)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	keys := make([]Key, 6)
	for i := range keys {
		k, err := GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k.PublicKey()
	}
	var prefixes []netip.Prefix
	for i := range 8 {
		prefixes = append(prefixes, netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/24", 100+i)))
	}
	prefixes = append(prefixes, netip.MustParsePrefix("fd00:1::/64"), netip.MustParsePrefix("fd00:2::/64"))
	endpoints := []netip.AddrPort{{}, netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("[2001:db8::1]:51821")}

	// want is what the device must hold: the desired peers, except that a
	// peer desired without endpoint keeps the one it had.
	want := map[Key]Peer{}
	var last []Peer
	for step := range 60 {
		var desired []Peer
		next := map[Key]Peer{}
		for _, k := range keys {
			if rng.IntN(3) == 0 {
				continue
			}
			p := Peer{PublicKey: k, Endpoint: endpoints[rng.IntN(len(endpoints))]}
			for _, i := range rng.Perm(len(prefixes))[:rng.IntN(3)] {
				// Each prefix belongs to one peer only, as in a cluster.
				if claimed(next, prefixes[i]) {
					continue
				}
				p.AllowedIPs = append(p.AllowedIPs, prefixes[i])
			}
			desired = append(desired, p)
			exp := normalizePeer(p)
			if !exp.Endpoint.IsValid() {
				exp.Endpoint = want[k].Endpoint
			}
			next[k] = exp
		}
		mode := rng.IntN(4) // 0 sync, 1 set, 2-3 update (only what changed)
		if step == 0 && mode > 1 {
			if err := d.UpdatePeers(desired, nil); !errors.Is(err, ErrNoRecord) {
				t.Fatalf("update before any record: %v, want ErrNoRecord", err)
			}
			mode = 1
		}
		var err error
		switch mode {
		case 0:
			_, err = d.SyncPeers(desired)
		case 1:
			err = d.SetPeers(desired)
		default:
			upsert, remove := changedPeers(last, desired)
			err = d.UpdatePeers(upsert, remove)
		}
		if err != nil {
			t.Fatalf("step %d (mode %d): %v", step, mode, err)
		}
		last = desired
		want = next
		assertDevice(t, d, want, step)
		// Nobody else touched the device: a resync finds nothing to say
		// and writes nothing.
		sets := d.ipcSets.Load()
		if drift, err := d.SyncPeers(desired); err != nil || drift != "" || d.ipcSets.Load() != sets {
			t.Fatalf("step %d: resync found drift %q (err %v, %d writes)", step, drift, err, d.ipcSets.Load()-sets)
		}
	}
}

// changedPeers is what an UpdatePeers caller passes: the peers of next
// that are new or differ from prev, and the keys prev had and next lacks.
func changedPeers(prev, next []Peer) (upsert []Peer, remove []Key) {
	old := map[Key]Peer{}
	for _, p := range prev {
		old[p.PublicKey] = p
	}
	for _, p := range next {
		if o, ok := old[p.PublicKey]; !ok || o.Endpoint != p.Endpoint || !slices.Equal(o.AllowedIPs, p.AllowedIPs) {
			upsert = append(upsert, p)
		}
		delete(old, p.PublicKey)
	}
	for k := range old {
		remove = append(remove, k)
	}
	return upsert, remove
}

func claimed(peers map[Key]Peer, p netip.Prefix) bool {
	for _, q := range peers {
		if slices.Contains(q.AllowedIPs, p) {
			return true
		}
	}
	return false
}

func assertDevice(t *testing.T, d *Device, want map[Key]Peer, step int) {
	t.Helper()
	stats, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	got := map[Key]Peer{}
	for _, s := range stats {
		got[s.PublicKey] = normalizePeer(s.Peer)
	}
	if len(got) != len(want) {
		t.Fatalf("step %d: device has %d peers, want %d:\n got %v\nwant %v", step, len(got), len(want), got, want)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || g.Endpoint != w.Endpoint || !slices.Equal(g.AllowedIPs, w.AllowedIPs) {
			t.Fatalf("step %d: peer %s is %+v, want %+v", step, k, g, w)
		}
	}
}

// TestSetPeersRepairsOnlyOnSync pins the split between the two: SetPeers
// trusts its record (a Node event must not read 5000 peers back), so a peer
// removed behind its back stays removed until SyncPeers, which the engine
// runs on every resync.
func TestSetPeersRepairsOnlyOnSync(t *testing.T) {
	needRootForTUN(t)
	d := benchDevice(t)
	var peers []Peer
	for i := range 3 {
		k, err := GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, Peer{PublicKey: k.PublicKey(),
			Endpoint:   netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 51820),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i), 0}), 24)}})
	}
	if err := d.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
	// Behind crosswire's back, as `wg set crosswire0 peer X remove` would.
	if err := d.wg.IpcSet(fmt.Sprintf("public_key=%s\nremove=true\n", peers[1].PublicKey.hex())); err != nil {
		t.Fatal(err)
	}
	sets := d.ipcSets.Load()
	if err := d.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
	if n := d.ipcSets.Load() - sets; n != 0 {
		t.Fatalf("SetPeers with an unchanged record wrote %d times", n)
	}
	if got := peerIPs(t, d); len(got) != 2 {
		t.Fatalf("SetPeers repaired a removal it cannot see: %d peers", len(got))
	}
	drift, err := d.SyncPeers(peers)
	if err != nil {
		t.Fatal(err)
	}
	if drift != "tunnel peers: 1 missing, 0 differ, 0 unexpected" {
		t.Fatalf("SyncPeers drift %q", drift)
	}
	if got := peerIPs(t, d); len(got) != 3 {
		t.Fatalf("SyncPeers left %d peers, want 3", len(got))
	}
	// After a sync the record is the device again: the next change is one
	// write, and the device matches.
	peers[0].AllowedIPs = append(peers[0].AllowedIPs, netip.MustParsePrefix("10.201.0.0/24"))
	if err := d.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
	if got := peerIPs(t, d)[peers[0].PublicKey]; !slices.Equal(got, []string{"10.200.0.0/24", "10.201.0.0/24"}) {
		t.Fatalf("allowed IPs after the change: %v", got)
	}
}
