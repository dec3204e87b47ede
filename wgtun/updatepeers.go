package wgtun

import (
	"errors"
	"fmt"
)

// ErrNoRecord is UpdatePeers' answer when the device has no record of its
// peers (before the first SetPeers or SyncPeers, or after a failed write):
// the caller must give the whole set.
var ErrNoRecord = errors.New("no record of the device's peers; set them all")

// UpdatePeers changes only the peers named: upsert adds or replaces them,
// remove deletes those keys (a key in both is upserted). Like SetPeers it
// writes the difference from its record in one UAPI operation, but its
// cost follows the number of peers named, not the number the device holds:
// a Node event in a large cluster changes one peer.
//
// With Config.OnDemand too: the desired set, the activation table and the
// write change by the peers named (ondemand_delta.go), so the cost follows
// them and the number of active peers.
func (d *Device) UpdatePeers(upsert []Peer, remove []Key) error {
	if err := d.validatePeers(upsert); err != nil {
		return fmt.Errorf("wgtun %s: update peers: %w", d.cfg.Name, err)
	}
	d.setMu.Lock()
	defer d.setMu.Unlock()
	if d.written == nil {
		return fmt.Errorf("wgtun %s: update peers: %w", d.cfg.Name, ErrNoRecord)
	}
	if d.od != nil {
		norm := make([]Peer, len(upsert))
		for i, p := range upsert {
			norm[i] = normalizePeer(p)
		}
		return d.writeLocked(d.written, d.od.updateDesiredLocked(norm, remove))
	}
	cur := make(map[Key]Peer, len(upsert)+len(remove))
	want := make(map[Key]Peer, len(upsert))
	for _, k := range remove {
		if p, ok := d.written[k]; ok {
			cur[k] = p
		}
	}
	for _, p := range upsert {
		n := normalizePeer(p)
		if c, ok := d.written[n.PublicKey]; ok {
			cur[n.PublicKey] = c
		}
		want[n.PublicKey] = n
	}
	if body := diffIndexed(cur, want, d.cfg.Keepalive); body != "" {
		if err := d.ipcSet(body); err != nil {
			d.written = nil
			return fmt.Errorf("wgtun %s: update peers: uapi set: %w", d.cfg.Name, err)
		}
	}
	for k := range cur {
		if _, ok := want[k]; !ok {
			delete(d.written, k)
		}
	}
	for k, w := range want {
		if !w.Endpoint.IsValid() {
			w.Endpoint = cur[k].Endpoint // Diff leaves the device's
		}
		d.written[k] = w
	}
	d.nPeers.Store(int64(len(d.written)))
	return nil
}
