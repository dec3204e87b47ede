package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"go.uber.org/zap"
)

// MTUDevice is the tunnel's MTU knob (wgtun.Device).
type MTUDevice interface {
	MTU() (int, error)
	SetMTU(int) error
}

// MTUWatcher keeps an automatically sized tunnel MTU in step with the
// underlay: every interval it derives the MTU from the routes to the peers'
// endpoints and changes the device when the result differs, e.g. after the
// underlay interface's MTU was changed or a peer moved behind a smaller
// path. A configured MTU is never touched (the agent does not start one).
type MTUWatcher struct {
	Device MTUDevice
	// Peers returns the current desired peers (Engine.Peers).
	Peers    func() []Peer
	Underlay func(endpoints []netip.Addr) (int, error)
	Interval time.Duration
	Log      *zap.Logger

	measured bool // a check has seen peers' endpoints
}

// Run checks until ctx ends; a failed check is logged and retried. Until
// the first peers are known it looks every second, so the start-up guess
// is replaced as soon as there is a route to measure; then every Interval.
func (w *MTUWatcher) Run(ctx context.Context) error {
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if _, err := w.Check(); err != nil {
			w.Log.Warn("tunnel MTU check failed", zap.Error(err))
			continue
		}
		if w.measured {
			wait = w.Interval
		}
	}
}

// Check derives the MTU once and applies it; it reports the MTU in force.
func (w *MTUWatcher) Check() (int, error) {
	var endpoints []netip.Addr
	v6Endpoints, v6Pods := false, false
	for _, p := range w.Peers() {
		if p.Endpoint.IsValid() {
			a := p.Endpoint.Addr().Unmap()
			endpoints = append(endpoints, a)
			v6Endpoints = v6Endpoints || a.Is6()
		}
		for _, c := range p.PodCIDRs {
			v6Pods = v6Pods || c.Addr().Is6()
		}
	}
	if len(endpoints) == 0 {
		// Nothing to measure against yet: keep the start-up value, which
		// assumed the worst case.
		return w.Device.MTU()
	}
	u, err := w.Underlay(endpoints)
	if err != nil {
		return 0, fmt.Errorf("underlay MTU: %w", err)
	}
	w.measured = true
	want, err := TunnelMTU(u, v6Endpoints, v6Pods)
	if err != nil {
		return 0, err
	}
	have, err := w.Device.MTU()
	if err != nil {
		return 0, err
	}
	if have == want {
		return have, nil
	}
	if err := w.Device.SetMTU(want); err != nil {
		return have, err
	}
	w.Log.Info("tunnel MTU follows the underlay", zap.Int("from", have), zap.Int("to", want), zap.Int("underlay", u))
	return want, nil
}
