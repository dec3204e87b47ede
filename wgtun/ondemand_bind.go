package wgtun

import (
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
)

// onDemandBind activates the peers that incoming datagrams come from, by
// endpoint IP (see ondemand.go). Only Open differs from the wrapped bind:
// it wraps the receive functions, anew on every rebind.
//
// wireguard-go runs its sticky-socket route listener only for a bare
// *conn.StdNetBind, so with this wrapper a peer's cached source address is
// not cleared when routes change; it is still replaced by the destination
// address of each packet received from the peer.
type onDemandBind struct {
	conn.Bind
	od *onDemand
}

func (b *onDemandBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	if err != nil {
		return nil, 0, err
	}
	wrapped := make([]conn.ReceiveFunc, len(fns))
	for i, fn := range fns {
		wrapped[i] = b.od.receiveFunc(fn)
	}
	return wrapped, actual, nil
}

// receiveFunc wraps fn: the packets it returns are handed on once their
// senders' inactive desired peers are configured (or the bounded wait for
// that is over). Peers are matched by endpoint IP only: the remote's port
// may differ from the configured one (NAT), and every inactive peer with
// that IP is a candidate. A datagram asks for a candidate's activation only
// if the inbound guard admits it (ondemand_guard.go). wireguard-go gets
// every datagram and judges it as it always does, except replayed
// initiations (ondemand_replay.go), which it gets with size 0, i.e. skips.
func (od *onDemand) receiveFunc(fn conn.ReceiveFunc) conn.ReceiveFunc {
	// The last source's peers, for the next datagram from it (a GRO batch
	// is mostly one peer's). Only this function's goroutine uses them:
	// wireguard-go runs one RoutineReceiveIncoming per ReceiveFunc.
	var (
		lastTab   *odTable
		lastIP    netip.Addr
		lastPeers odPeerSet
		mac       = od.guard.mac1.newMAC()
	)
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := fn(packets, sizes, eps)
		tab := od.table.Load()
		if tab == nil {
			return n, err
		}
		var want, handshake []*odPeer // allocated only when there is something to do
		var now time.Time
		for i := range n {
			msg := packets[i][:sizes[i]]
			// Initiations are rare (one per peer per two minutes): check
			// every one against the replay cache.
			var kind wgMsgKind
			classified, macOK := false, false
			if len(msg) == device.MessageInitiationSize && msg[0] == device.MessageInitiationType {
				kind, classified = classifyMsg(msg), true
				if kind == msgInitiation {
					if macOK = od.guard.mac1.valid(mac, msg); macOK && od.replays.replayed(msg) {
						sizes[i] = 0
						od.guard.refused[refReplay].Add(1)
						continue
					}
				}
			}
			if eps[i] == nil {
				continue
			}
			if ip := eps[i].DstIP(); tab != lastTab || ip != lastIP {
				lastTab, lastIP, lastPeers = tab, ip, tab.byEndpoint(ip)
			}
			if first := lastPeers.first; first == nil || (len(lastPeers.more) == 0 && first.active.Load()) {
				continue // most datagrams: from an active peer, or from no peer's address
			}
			for j := -1; j < len(lastPeers.more); j++ {
				p := lastPeers.first
				if j >= 0 {
					p = lastPeers.more[j]
				}
				if p.active.Load() {
					continue
				}
				if !classified {
					kind, classified = classifyMsg(msg), true
				}
				if now.IsZero() {
					now = time.Now()
				}
				if od.admit(p, kind, macOK, now) {
					want = append(want, p)
					if kind == msgTransport {
						handshake = append(handshake, p)
					}
				}
			}
		}
		if len(want) > 0 {
			od.activate(want, handshake, true)
		}
		return n, err
	}
}
