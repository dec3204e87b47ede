package wgtun

import (
	"fmt"
)

// MTU returns the TUN link's current MTU.
func (d *Device) MTU() (int, error) {
	mtu, err := d.tun.MTU()
	if err != nil {
		return 0, fmt.Errorf("wgtun %s: %w", d.cfg.Name, err)
	}
	return mtu, nil
}

// SetMTU changes the TUN link's MTU, e.g. when the underlay's changed. The
// kernel announces it with RTM_NEWLINK; nsTUN passes that on as an MTU event
// and wireguard-go re-reads the MTU (through nsTUN, in the TUN's namespace)
// for its padding. Routes through the device follow the link MTU at once,
// so the forward path's MSS clamp and "fragmentation needed" use the new
// value from the next packet on.
func (d *Device) SetMTU(mtu int) error {
	if mtu < minMTU || mtu > maxMTU {
		return fmt.Errorf("wgtun %s: MTU %d out of range %d..%d", d.cfg.Name, mtu, minMTU, maxMTU)
	}
	w := d.tun
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.nl == nil {
		return fmt.Errorf("wgtun %s: set MTU: device closed", d.cfg.Name)
	}
	link, err := w.nl.LinkByIndex(w.index)
	if err != nil {
		return fmt.Errorf("wgtun %s: set MTU: %w", d.cfg.Name, err)
	}
	if link.Attrs().MTU == mtu {
		return nil
	}
	if err := w.nl.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("wgtun %s: set MTU %d: %w", d.cfg.Name, mtu, err)
	}
	return nil
}
