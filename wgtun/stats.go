package wgtun

import (
	"fmt"
	"sync"
	"time"
)

// PeerStats is a peer as the device currently has it, with its counters.
type PeerStats struct {
	Peer
	LastHandshake    time.Time // zero if never
	RxBytes, TxBytes uint64
}

// Stats reads every peer the device has now, sorted by public key.
// Endpoints are what the device uses now, which may have been learnt from
// the peer. It is a fresh look for an operator: unlike the device's own
// reads it is neither recorded (LastStats) nor observed (OnRead).
func (d *Device) Stats() ([]PeerStats, error) {
	st, err := d.read()
	if err != nil {
		return nil, err
	}
	return st.Peers, nil
}

// LastStats returns the peers as the device's last own read found them
// (SyncPeers on every resync, the on-demand trimmer, InitiateHandshakes),
// and when; zero time before the first. It reads nothing, so status and
// metrics can report the device at no cost to it. The slice is shared:
// do not modify it.
func (d *Device) LastStats() (time.Time, []PeerStats) {
	d.reads.mu.Lock()
	defer d.reads.mu.Unlock()
	return d.reads.at, d.reads.peers
}

// OnRead makes fn see every read the device makes for its own purposes,
// with its time, in order: the agent's handshake tracker advances on the
// datapath's schedule and never on a look from outside. fn runs on the
// reading goroutine, possibly while the device's writes wait: it must be
// quick, must not modify the slice and must not call the device. Set it
// before the device is used.
func (d *Device) OnRead(fn func(at time.Time, peers []PeerStats)) {
	d.reads.mu.Lock()
	d.reads.observe = fn
	d.reads.mu.Unlock()
}

// readRecord is the device's last own read (LastStats, OnRead).
type readRecord struct {
	mu      sync.Mutex
	at      time.Time
	peers   []PeerStats
	observe func(time.Time, []PeerStats)
}

// state reads the device for its own purposes and records the read.
func (d *Device) state() (deviceState, error) {
	st, err := d.read()
	if err != nil {
		return st, err
	}
	now := time.Now()
	d.reads.mu.Lock()
	defer d.reads.mu.Unlock()
	d.reads.at, d.reads.peers = now, st.Peers
	if d.reads.observe != nil {
		d.reads.observe(now, st.Peers)
	}
	return st, nil
}

// read gets the device's state over UAPI.
func (d *Device) read() (deviceState, error) {
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
