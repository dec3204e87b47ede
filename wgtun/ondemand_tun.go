package wgtun

import (
	"slices"

	"golang.zx2c4.com/wireguard/tun"
)

// onDemandTUN activates the peers of outgoing packets (see ondemand.go).
// Only Read differs from the wrapped device.
type onDemandTUN struct {
	tun.Device
	od *onDemand
}

// Read returns the inner Read's packets once the inactive desired peers they
// are for are configured (or the bounded wait for that is over), so that
// wireguard-go's allowed-IPs lookup right after Read finds them.
func (t *onDemandTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.Device.Read(bufs, sizes, offset)
	if tab := t.od.table.Load(); tab != nil {
		var want []*odPeer // allocated only when there is something to do
		for i := range n {
			p := tab.lookupPacket(bufs[i][offset : offset+sizes[i]])
			if p != nil && !p.active.Load() && !slices.Contains(want, p) {
				want = append(want, p)
			}
		}
		if len(want) > 0 {
			t.od.activate(want, nil, false)
		}
	}
	return n, err
}
