package wgtun

import (
	"fmt"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/tun"
)

// nsTUN pins the TUN's side effects to the network namespace it was created
// in. wireguard-go reacts to link up/down events from a goroutine of its own
// by calling Device.Up/Down, and Up opens the UDP sockets in whatever
// namespace that goroutine's OS thread happens to be in; likewise the stock
// MTU() asks by interface name through a fresh socket. For an agent in the
// host namespace that is harmless, but a device opened from a thread switched
// into another namespace would get its sockets (and MTU answers) from the
// wrong one. So:
//
//   - up/down events are dropped: the device goes up once, in Open, on the
//     caller's thread, and stays up until Close even if someone sets the link
//     down (packets just stop flowing through the TUN meanwhile);
//   - MTU() asks through a netlink handle bound to the TUN's namespace, by
//     ifindex.
type nsTUN struct {
	tun.Device
	events chan tun.Event
	index  int

	mu sync.Mutex // guards nl, which is closed by Close
	nl *netlink.Handle
}

// newNSTUN wraps t; nl must have been created in t's namespace and is owned
// by the wrapper from now on.
func newNSTUN(t tun.Device, nl *netlink.Handle, index int) *nsTUN {
	w := &nsTUN{Device: t, events: make(chan tun.Event, 5), index: index, nl: nl}
	go w.forward()
	return w
}

func (w *nsTUN) forward() {
	defer close(w.events)
	for ev := range w.Device.Events() {
		if ev &= tun.EventMTUUpdate; ev != 0 {
			w.events <- ev
		}
	}
}

func (w *nsTUN) Events() <-chan tun.Event { return w.events }

func (w *nsTUN) MTU() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.nl == nil {
		return 0, fmt.Errorf("tun closed")
	}
	l, err := w.nl.LinkByIndex(w.index)
	if err != nil {
		return 0, fmt.Errorf("get MTU of TUN ifindex %d: %w", w.index, err)
	}
	return l.Attrs().MTU, nil
}

func (w *nsTUN) Close() error {
	err := w.Device.Close()
	w.mu.Lock()
	if w.nl != nil {
		w.nl.Close()
		w.nl = nil
	}
	w.mu.Unlock()
	return err
}
