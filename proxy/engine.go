package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/wgtun"
)

// Engine converges the node's datapath to the desired state. Updates are
// recorded at once and applied by one goroutine (Run), coalesced; a
// periodic resync compares the kernel with the desired state and repairs
// drift. Nothing is touched before the first Update, so a restarting agent
// leaves the datapath it finds in place until it knows what it should be.
type Engine struct {
	cfg     Config
	rules   Ruleset
	tunnel  Tunnel
	router  Router
	sysctls func() ([]string, error)
	log     *zap.Logger
	now     func() time.Time

	kick   chan struct{}
	repair chan struct{} // Resync

	mu      sync.Mutex
	want    wanted
	status  Status
	onApply func(ApplyResult) // status.go: OnApply

	// Owned by the Run goroutine.
	applied      *appliedState
	handshook    bool
	retryBackoff time.Duration
	lastRepair   time.Time // when a Resync request last ran
}

// appliedState is what the last successful apply left in the kernel.
type appliedState struct {
	local []netip.Prefix
	peers map[string]Peer
}

// Deps are the engine's kernel-facing parts.
type Deps struct {
	Rules   Ruleset
	Tunnel  Tunnel
	Router  Router
	Sysctls func() ([]string, error)
	Log     *zap.Logger
}

// New returns an engine; call Run to start applying.
func New(cfg Config, d Deps) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Rules == nil || d.Tunnel == nil || d.Router == nil {
		return nil, errors.New("proxy: rules, tunnel and router are required")
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Sysctls == nil {
		d.Sysctls = func() ([]string, error) { return nil, nil }
	}
	return &Engine{
		cfg: cfg, rules: d.Rules, tunnel: d.Tunnel, router: d.Router,
		sysctls: d.Sysctls, log: d.Log, now: time.Now,
		kick: make(chan struct{}, 1), repair: make(chan struct{}, 1),
	}, nil
}

// Update records the whole desired state; Run applies it.
func (e *Engine) Update(d Desired) {
	e.mu.Lock()
	e.want.replace(d)
	e.status.Known = true
	e.mu.Unlock()
	e.poke()
}

// Change records a change to the desired state: the peers added or
// changed (whole), the peers removed by name, and this node's pod CIDRs
// when localChanged. Run applies it touching only those peers' set
// elements, routes and tunnel peers: the cost of a Node event does not
// grow with the cluster. A Change before the first Update is ignored (a
// source always starts with a whole state).
func (e *Engine) Change(c Delta) {
	e.mu.Lock()
	if !e.status.Known {
		e.mu.Unlock()
		e.log.Warn("change before the first desired state; ignored")
		return
	}
	e.want.change(c)
	e.mu.Unlock()
	e.poke()
}

// Resync asks for a full reconcile now rather than at the next resync
// tick: the kernel was changed behind the engine (nft.Manager.Watch). At
// most one such reconcile runs per minRepairGap, so a program that keeps
// rewriting crosswire's objects cannot keep the engine busy; requests in
// between are folded into one at the end of the gap.
func (e *Engine) Resync() {
	select {
	case e.repair <- struct{}{}:
	default:
	}
}

// minRepairGap spaces the reconciles Resync asks for.
const minRepairGap = time.Second

func (e *Engine) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run applies updates and resyncs until ctx ends. It never tears the
// datapath down: stopping the agent must not open a plaintext window.
func (e *Engine) Run(ctx context.Context) error {
	resync := time.NewTicker(e.cfg.ResyncInterval)
	defer resync.Stop()
	var retry, repairLater <-chan time.Time
	for {
		full := false
		select {
		case <-ctx.Done():
			return nil
		case <-e.kick:
		case <-resync.C:
			full = true
		case <-retry:
			full = true
		case <-e.repair:
			if wait := minRepairGap - e.now().Sub(e.lastRepair); wait > 0 {
				if repairLater == nil {
					repairLater = time.After(wait)
				}
				continue
			}
			full, e.lastRepair = true, e.now()
		case <-repairLater:
			repairLater = nil
			full, e.lastRepair = true, e.now()
		}
		retry = nil
		if err := e.reconcile(full); err != nil {
			e.retryBackoff = min(max(2*e.retryBackoff, 200*time.Millisecond), e.cfg.ResyncInterval)
			e.log.Error("apply failed; will retry", zap.Error(err), zap.Duration("retry_in", e.retryBackoff))
			retry = time.After(e.retryBackoff)
			continue
		}
		e.retryBackoff = 0
	}
}

// reconcile applies the desired state: by the changed peers alone when
// the kernel is known to hold the last applied state and only changes
// arrived, by comparing whole lists after a whole new state, and fully
// (reading the kernel back and repairing every difference) on the first
// apply, on resync and after an error.
func (e *Engine) reconcile(full bool) error {
	e.mu.Lock()
	if !e.status.Known {
		e.mu.Unlock()
		return nil
	}
	full = full || e.applied == nil
	var (
		d     *Desired
		delta []peerChange
		local []netip.Prefix
	)
	if full || e.want.replaced {
		d = e.want.desired(e.cfg.Strict)
	} else {
		delta, local = e.want.pending(), slices.Clone(e.want.local)
	}
	e.want.clearPending()
	e.mu.Unlock()

	start := e.now()
	var (
		repairs []string
		err     error
	)
	switch {
	case full:
		repairs, err = e.applyFull(d)
	case d != nil:
		err = e.applyWhole(d)
	default:
		err = e.applyDelta(delta, local)
	}
	e.record(start, full, repairs, err)
	if err != nil {
		e.applied = nil
		return err
	}
	if d != nil {
		e.applied = &appliedState{local: slices.Clone(d.Local), peers: make(map[string]Peer, len(d.Peers))}
		for _, p := range d.Peers {
			e.applied.peers[p.Name] = p
		}
	} else {
		e.applied.local = local
		for _, c := range delta {
			if c.present {
				e.applied.peers[c.name] = c.peer
			} else {
				delete(e.applied.peers, c.name)
			}
		}
	}
	if !e.handshook {
		// A freshly started tunnel has no sessions, and a peer that only
		// receives would keep using its stale one for seconds: start
		// handshakes with everybody now.
		if h, ok := e.tunnel.(handshaker); ok {
			h.InitiateHandshakes()
		}
		e.handshook = true
	}
	return nil
}

// applyWhole changes only what differs from the last apply, comparing the
// whole lists, in the order that never marks a packet before it can be
// encrypted: removals take the set element first, then the route, then
// the peer; additions the reverse.
func (e *Engine) applyWhole(d *Desired) error {
	remote := d.remote()
	old := e.applied.remote(d.strict)
	removed := minus(old, remote)
	added := minus(remote, old)
	if err := e.removeRemote(removed); err != nil {
		return err
	}
	if err := e.tunnel.SetPeers(d.tunnelPeers()); err != nil {
		return fmt.Errorf("configure tunnel peers: %w", err)
	}
	return e.addRemote(added, d.Local, d.nftState)
}

// applyDelta applies the changes of a few peers, in applyWhole's order,
// in time proportional to them. Pod CIDRs cannot be claimed by two peers
// (the controller rejects overlaps), so a prefix that leaves one changed
// peer for another is in both lists and stays marked throughout.
func (e *Engine) applyDelta(delta []peerChange, local []netip.Prefix) error {
	strict := e.cfg.Strict
	var before, after []netip.Prefix
	var upsert []wgtun.Peer
	var remove []wgtun.Key
	for _, c := range delta {
		old, had := e.applied.peers[c.name]
		if had {
			before = append(before, remotePrefixes(old, strict)...)
		}
		if c.present {
			after = append(after, remotePrefixes(c.peer, strict)...)
			if tp, ok := tunnelPeer(c.peer); ok {
				upsert = append(upsert, tp)
			}
		}
		if had && !old.PublicKey.IsZero() && (!c.present || c.peer.PublicKey != old.PublicKey) {
			remove = append(remove, old.PublicKey)
		}
	}
	removed, added := minus(before, after), minus(after, before)
	if err := e.removeRemote(removed); err != nil {
		return err
	}
	if err := e.updateTunnel(upsert, remove); err != nil {
		return fmt.Errorf("configure tunnel peers: %w", err)
	}
	return e.addRemote(added, local, func() nft.State {
		// Only when this node's own pod CIDRs changed: rare, and a whole
		// table either way.
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.want.desired(strict).nftState()
	})
}

// updateTunnel changes the named tunnel peers, through the whole peer list
// for a tunnel that cannot take a partial update.
func (e *Engine) updateTunnel(upsert []wgtun.Peer, remove []wgtun.Key) error {
	if len(upsert) == 0 && len(remove) == 0 {
		return nil
	}
	if u, ok := e.tunnel.(peerUpdater); ok {
		return u.UpdatePeers(upsert, remove)
	}
	e.mu.Lock()
	d := e.want.desired(e.cfg.Strict)
	e.mu.Unlock()
	return e.tunnel.SetPeers(d.tunnelPeers())
}

func (e *Engine) removeRemote(removed []netip.Prefix) error {
	if err := e.rules.RemoveRemote(removed); err != nil {
		return fmt.Errorf("remove set elements: %w", err)
	}
	if err := e.router.DelRoutes(removed); err != nil {
		return fmt.Errorf("remove routes: %w", err)
	}
	return nil
}

// addRemote adds routes, then marks: set elements, or the whole table
// (from table()) when this node's pod CIDRs changed.
func (e *Engine) addRemote(added, local []netip.Prefix, table func() nft.State) error {
	if err := e.router.AddRoutes(added); err != nil {
		return fmt.Errorf("add routes: %w", err)
	}
	if !slices.Equal(e.applied.local, local) {
		if err := e.rules.Apply(table()); err != nil {
			return fmt.Errorf("apply nftables table: %w", err)
		}
		return nil
	}
	if err := e.rules.AddRemote(added); err != nil {
		return fmt.Errorf("add set elements: %w", err)
	}
	return nil
}

// applyFull reads every kernel object back and repairs what differs. The
// order keeps the fail-closed promise: peers and routes for new prefixes
// exist before the atomic table replace marks them, and stale routes go
// only after the table stopped marking their prefixes.
func (e *Engine) applyFull(d *Desired) ([]string, error) {
	var repairs []string
	// A sysctl that cannot be written (a read-only /proc/sys in an
	// unprivileged container) must not hold back the rest of the datapath:
	// it is reported after everything else is in place.
	changed, sysctlErr := e.sysctls()
	for _, c := range changed {
		repairs = append(repairs, "sysctl "+c)
	}

	added, err := e.router.EnsureRule()
	if err != nil {
		return repairs, err
	}
	if added {
		repairs = append(repairs, "policy rule missing")
	}

	diff, err := e.tunnel.SyncPeers(d.tunnelPeers())
	if diff != "" {
		repairs = append(repairs, diff)
	}
	if err != nil {
		return repairs, fmt.Errorf("configure tunnel peers: %w", err)
	}

	remote := d.remote()
	complete, present, err := e.router.Routes()
	if err != nil {
		return repairs, err
	}
	if missing := minus(remote, complete); len(missing) > 0 {
		repairs = append(repairs, fmt.Sprintf("routes missing for %v", missing))
		if err := e.router.AddRoutes(missing); err != nil {
			return repairs, fmt.Errorf("add routes: %w", err)
		}
	}

	st := d.nftState()
	drift, err := e.rules.Drift(st)
	if err != nil {
		return repairs, fmt.Errorf("read nftables table: %w", err)
	}
	if len(drift) > 0 {
		repairs = append(repairs, drift...)
		if err := e.rules.Apply(st); err != nil {
			return repairs, fmt.Errorf("apply nftables table: %w", err)
		}
	}

	if stale := minus(present, remote); len(stale) > 0 {
		repairs = append(repairs, fmt.Sprintf("stale routes for %v", stale))
		if err := e.router.DelRoutes(stale); err != nil {
			return repairs, fmt.Errorf("remove stale routes: %w", err)
		}
	}
	if sysctlErr != nil {
		return repairs, fmt.Errorf("sysctls: %w", sysctlErr)
	}
	return repairs, nil
}

// Cleanup removes every kernel object crosswire created in this namespace
// (its table, rule and routes); the tunnel device goes with its process.
func Cleanup(rules Ruleset, router Router) error {
	var errs []error
	if err := rules.Delete(); err != nil {
		errs = append(errs, fmt.Errorf("delete nftables table: %w", err))
	}
	if err := router.DeleteAll(); err != nil {
		errs = append(errs, fmt.Errorf("delete rule and routes: %w", err))
	}
	return errors.Join(errs...)
}
