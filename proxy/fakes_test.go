package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/wgtun"
)

// world is a fake kernel: it records every call in order and keeps the
// state the calls leave behind, so tests assert both order and outcome.
type world struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]error

	table     bool
	local     []netip.Prefix
	remoteSet []netip.Prefix
	rule      bool
	routes    []netip.Prefix
	peers     []wgtun.Peer

	// violations records every moment a marked prefix had no route: the
	// fail-closed order broken (a marked packet would follow the main
	// table). Checked after every call.
	violations []string
}

func newWorld() *world { return &world{fail: map[string]error{}} }

func (w *world) call(name string, ps ...netip.Prefix) error {
	w.calls = append(w.calls, fmt.Sprint(name, ps))
	if err := w.fail[name]; err != nil {
		return err
	}
	return nil
}

// check records a violation if a marked prefix has no route; the callers
// hold mu and call it after changing the world.
func (w *world) check(op string) {
	if !w.table {
		return
	}
	if unrouted := minus(w.remoteSet, w.routes); len(unrouted) > 0 {
		w.violations = append(w.violations, fmt.Sprintf("after %s: %v marked without a route", op, unrouted))
	}
}

func (w *world) takeCalls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.calls
	w.calls = nil
	return c
}

type fakeRules struct{ *world }

func (f fakeRules) Apply(st nft.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("nft.Apply", st.Remote...); err != nil {
		return err
	}
	f.table, f.local, f.remoteSet = true, slices.Clone(st.Local), slices.Clone(st.Remote)
	f.check("nft.Apply")
	return nil
}

func (f fakeRules) AddRemote(ps []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("nft.AddRemote", ps...); err != nil {
		return err
	}
	f.remoteSet = sortPrefixes(append(f.remoteSet, ps...))
	f.check("nft.AddRemote")
	return nil
}

func (f fakeRules) RemoveRemote(ps []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("nft.RemoveRemote", ps...); err != nil {
		return err
	}
	f.remoteSet = minus(f.remoteSet, ps)
	return nil
}

func (f fakeRules) Drift(st nft.State) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case !f.table:
		return []string{"table missing"}, nil
	case !slices.Equal(f.remoteSet, st.Remote) || !slices.Equal(f.local, st.Local):
		return []string{"sets differ"}, nil
	}
	return nil, nil
}

func (f fakeRules) Delete() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.table, f.local, f.remoteSet = false, nil, nil
	return f.call("nft.Delete")
}

type fakeTunnel struct{ *world }

func (f fakeTunnel) SetPeers(ps []wgtun.Peer) error { return f.setPeers("wg.SetPeers", ps) }

// SyncPeers reports drift as the real device does: by key, allowed IPs and
// endpoint.
func (f fakeTunnel) SyncPeers(ps []wgtun.Peer) (string, error) {
	f.mu.Lock()
	have := map[wgtun.Key]string{}
	for _, p := range f.peers {
		have[p.PublicKey] = fmt.Sprint(sortPrefixes(slices.Clone(p.AllowedIPs)), p.Endpoint)
	}
	f.mu.Unlock()
	var drift string
	for _, p := range ps {
		if have[p.PublicKey] != fmt.Sprint(sortPrefixes(slices.Clone(p.AllowedIPs)), p.Endpoint) {
			drift = "tunnel peers differ"
		}
		delete(have, p.PublicKey)
	}
	if len(have) > 0 {
		drift = "tunnel peers differ"
	}
	return drift, f.setPeers("wg.SyncPeers", ps)
}

func (f fakeTunnel) setPeers(op string, ps []wgtun.Peer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []netip.Prefix
	for _, p := range ps {
		all = append(all, p.AllowedIPs...)
	}
	if err := f.call(op, sortPrefixes(all)...); err != nil {
		return err
	}
	f.peers = slices.Clone(ps)
	return nil
}

func (f fakeTunnel) UpdatePeers(upsert []wgtun.Peer, remove []wgtun.Key) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []netip.Prefix
	for _, p := range upsert {
		all = append(all, p.AllowedIPs...)
	}
	if err := f.call("wg.UpdatePeers", sortPrefixes(all)...); err != nil {
		return err
	}
	gone := map[wgtun.Key]bool{}
	for _, k := range remove {
		gone[k] = true
	}
	for _, p := range upsert {
		gone[p.PublicKey] = true
	}
	f.peers = slices.DeleteFunc(f.peers, func(p wgtun.Peer) bool { return gone[p.PublicKey] })
	f.peers = append(f.peers, upsert...)
	return nil
}

func (f fakeTunnel) Stats() ([]wgtun.PeerStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wgtun.PeerStats
	for _, p := range f.peers {
		out = append(out, wgtun.PeerStats{Peer: p})
	}
	return out, nil
}

type fakeRouter struct{ *world }

func (f fakeRouter) EnsureRule() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	had := f.rule
	f.rule = true
	return !had, nil
}

func (f fakeRouter) Routes() ([]netip.Prefix, []netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.routes), slices.Clone(f.routes), nil
}

func (f fakeRouter) AddRoutes(ps []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ps) == 0 {
		return nil
	}
	if err := f.call("route.Add", ps...); err != nil {
		return err
	}
	f.routes = sortPrefixes(append(f.routes, ps...))
	return nil
}

func (f fakeRouter) DelRoutes(ps []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ps) == 0 {
		return nil
	}
	if err := f.call("route.Del", ps...); err != nil {
		return err
	}
	f.routes = minus(f.routes, ps)
	f.check("route.Del")
	return nil
}

func (f fakeRouter) DeleteAll() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rule, f.routes = false, nil
	return f.call("route.DeleteAll")
}
