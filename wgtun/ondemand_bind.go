package wgtun

import (
	"net/netip"
	"slices"

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
// that IP is activated.
func (od *onDemand) receiveFunc(fn conn.ReceiveFunc) conn.ReceiveFunc {
	// The last source's peers, for the next datagram from it (a GRO batch
	// is mostly one peer's). Only this function's goroutine uses them:
	// wireguard-go runs one RoutineReceiveIncoming per ReceiveFunc.
	var (
		lastTab   *odTable
		lastIP    netip.Addr
		lastPeers odPeerSet
	)
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := fn(packets, sizes, eps)
		tab := od.table.Load()
		if tab == nil {
			return n, err
		}
		var want, handshake []*odPeer // allocated only when there is something to do
		for i := range n {
			if eps[i] == nil {
				continue
			}
			if ip := eps[i].DstIP(); tab != lastTab || ip != lastIP {
				lastTab, lastIP, lastPeers = tab, ip, tab.byEndpoint(ip)
			}
			if p := lastPeers.first; p != nil && !p.active.Load() {
				want, handshake = wantPeer(want, handshake, p, packets[i][:sizes[i]])
			}
			for _, p := range lastPeers.more {
				if !p.active.Load() {
					want, handshake = wantPeer(want, handshake, p, packets[i][:sizes[i]])
				}
			}
		}
		if len(want) > 0 {
			od.activate(want, handshake)
		}
		return n, err
	}
}

// wantPeer adds the inactive peer p that msg came from to the peers to
// activate, and to those to start a handshake with if msg is transport data.
func wantPeer(want, handshake []*odPeer, p *odPeer, msg []byte) ([]*odPeer, []*odPeer) {
	if !slices.Contains(want, p) {
		want = append(want, p)
	}
	if isTransportData(msg) && !slices.Contains(handshake, p) {
		handshake = append(handshake, p)
	}
	return want, handshake
}

// isTransportData reports whether msg is a WireGuard transport data message
// (type 4, little-endian 32-bit, as wireguard-go reads it).
func isTransportData(msg []byte) bool {
	return len(msg) >= device.MessageTransportSize &&
		msg[0] == device.MessageTransportType && msg[1] == 0 && msg[2] == 0 && msg[3] == 0
}
