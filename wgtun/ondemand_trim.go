package wgtun

import (
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
)

// maxTrimInterval bounds the trimmer's period, so that a long IdleTimeout
// still notices counters that moved between checks.
const maxTrimInterval = 30 * time.Second

// trimInterval is how often the trimmer looks at the active peers.
func trimInterval(idle time.Duration) time.Duration {
	return min(idle/4, maxTrimInterval)
}

// runTrimmer removes idle peers from wireguard-go every trimInterval, and
// confirms or removes inbound activations every confirmInterval (a no-op
// without any), until halt.
func (d *Device) runTrimmer() {
	od := d.od
	defer od.done.Done()
	t := time.NewTicker(trimInterval(od.idle))
	defer t.Stop()
	c := time.NewTicker(confirmInterval)
	defer c.Stop()
	for {
		select {
		case <-od.stop:
			return
		case now := <-t.C:
			d.trimIdle(now)
		case now := <-c.C:
			if od.guard.nPending.Load() > 0 {
				d.confirmInbound(now)
			}
		}
	}
}

// peerIdle reports whether an active peer may be removed: it has been
// configured for at least idle, has not completed a handshake within idle
// (wireguard-go rekeys every two minutes while a session carries traffic,
// and a session unused for three minutes needs a new handshake on its next
// packet), and its byte counters have not moved since the previous check
// (no traffic right now, which the handshake age cannot tell).
func peerIdle(now, activatedAt, lastHandshake time.Time, prevRx, prevTx, rx, tx uint64, idle time.Duration) bool {
	switch {
	case now.Sub(activatedAt) < idle:
		return false
	case !lastHandshake.IsZero() && now.Sub(lastHandshake) < idle:
		return false
	default:
		return rx == prevRx && tx == prevTx
	}
}

// trimIdle removes the idle active peers in one UAPI set, from one UAPI get.
// Active peers the device lacks (removed by hand) are left active for
// SyncPeers to report and restore.
func (d *Device) trimIdle(now time.Time) {
	od := d.od
	d.setMu.Lock()
	defer d.setMu.Unlock()
	if od.stopped() || od.nConfigured.Load() == 0 {
		return
	}
	st, err := d.state()
	if err != nil {
		d.log.Warn("on-demand: trim idle peers", zap.Error(err))
		return
	}
	var idle []*odPeer
	for _, s := range st.Peers {
		p := od.peers[s.PublicKey]
		if p == nil || !p.active.Load() {
			continue // not ours to trim: SyncPeers deals with it
		}
		if peerIdle(now, p.activatedAt, s.LastHandshake, p.rx, p.tx, s.RxBytes, s.TxBytes, od.idle) {
			idle = append(idle, p)
		}
		p.rx, p.tx = s.RxBytes, s.TxBytes
	}
	if len(idle) > 0 {
		d.removePeersLocked(idle, "idle")
	}
}

// removePeersLocked removes active peers from wireguard-go in one UAPI set
// and logs it; what says which peers. Caller holds setMu.
func (d *Device) removePeersLocked(peers []*odPeer, what string) {
	od := d.od
	var b strings.Builder
	for _, p := range peers {
		// Cleared before the removal: a packet that sees the flag clear
		// asks for the peer again, and the activator, waiting for setMu,
		// re-adds it after this write.
		od.markInactive(p)
		fmt.Fprintf(&b, "public_key=%s\nremove=true\n", p.key.hex())
	}
	if err := d.ipcSet(b.String()); err != nil {
		d.written = nil // the next SetPeers reads back and adopts what is left
		d.log.Warn("on-demand: remove "+what+" tunnel peers", zap.Int("peers", len(peers)), zap.Error(err))
		return
	}
	for _, p := range peers {
		delete(d.written, p.key)
	}
	d.log.Info("on-demand: removed "+what+" tunnel peers", zap.Int("removed", len(peers)),
		zap.Int64("configured", od.nConfigured.Load()), zap.Int64("desired", od.nDesired.Load()),
		zap.Duration("idleTimeout", od.idle))
}
