package wgtun

import (
	"fmt"
	"time"
)

// PeerStats is a peer as the device currently has it, with its counters.
type PeerStats struct {
	Peer
	LastHandshake    time.Time // zero if never
	RxBytes, TxBytes uint64
}

// Stats returns every peer the device has, sorted by public key. Endpoints
// are what the device uses now, which may have been learnt from the peer.
func (d *Device) Stats() ([]PeerStats, error) {
	st, err := d.state()
	if err != nil {
		return nil, err
	}
	return st.Peers, nil
}

func (d *Device) state() (deviceState, error) {
	text, err := d.wg.IpcGet()
	if err != nil {
		return deviceState{}, fmt.Errorf("wgtun %s: uapi get: %w", d.cfg.Name, err)
	}
	st, err := parseIpcGet(text)
	if err != nil {
		return deviceState{}, fmt.Errorf("wgtun %s: %w", d.cfg.Name, err)
	}
	return st, nil
}
