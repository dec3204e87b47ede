package proxy

import (
	"slices"
	"time"

	"go.uber.org/zap"
)

// Status is the engine's view for operators and tests.
type Status struct {
	// Known is false until the first desired state arrived.
	Known        bool
	Applied      bool // the last apply succeeded
	LastApply    time.Time
	LastDuration time.Duration
	LastError    string
	Applies      uint64
	Errors       uint64
	DriftRepairs uint64
	LastRepairs  []string
	// Peers are the desired peers, sorted by name.
	Peers []Peer
}

// ApplyResult describes one reconcile, for metrics (OnApply).
type ApplyResult struct {
	Full     bool // a full apply (first, resync, after an error), else incremental
	Start    time.Time
	Duration time.Duration
	Err      error
	// Drift is true when the apply repaired drift (not counted when the
	// first apply adopts what a previous agent left).
	Drift bool
}

// OnApply registers fn to be called after every reconcile, on the engine's
// goroutine (keep it fast). Call it before Run.
func (e *Engine) OnApply(fn func(ApplyResult)) {
	e.mu.Lock()
	e.onApply = fn
	e.mu.Unlock()
}

// ApplyStatus is Status without the peers: it copies no peer, so it costs
// the same at 5000 Nodes as at 10 and holds the engine's lock only for a
// copy of a few fields (readiness probes ask every few seconds).
func (e *Engine) ApplyStatus() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.status
	s.Peers = nil
	s.LastRepairs = slices.Clone(s.LastRepairs)
	return s
}

// Status returns a copy of the current status.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.status
	s.Peers = e.want.sortedPeers()
	s.LastRepairs = slices.Clone(s.LastRepairs)
	return s
}

func (e *Engine) record(start time.Time, full bool, repairs []string, err error) {
	dur := e.now().Sub(start)
	e.mu.Lock()
	e.status.Applies++
	e.status.LastApply = start
	e.status.LastDuration = dur
	e.status.Applied = err == nil
	e.status.LastError = ""
	if err != nil {
		e.status.Errors++
		e.status.LastError = err.Error()
	}
	// The first full apply after start adopts what a previous agent left;
	// differences then are expected (the tunnel is new), not drift.
	adopting := e.status.Applies == 1
	if len(repairs) > 0 && !adopting {
		e.status.DriftRepairs++
		e.status.LastRepairs = repairs
	}
	onApply := e.onApply
	e.mu.Unlock()
	if onApply != nil {
		// record runs before reconcile updates e.applied: nil here means
		// this apply was a full one whatever the caller asked for.
		onApply(ApplyResult{Full: full || e.applied == nil, Start: start, Duration: dur, Err: err,
			Drift: len(repairs) > 0 && !adopting})
	}

	switch {
	case len(repairs) > 0 && adopting:
		e.log.Info("adopted existing datapath", zap.Strings("changes", repairs), zap.Duration("took", dur))
	case len(repairs) > 0:
		e.log.Warn("repaired drift", zap.Strings("repairs", repairs), zap.Duration("took", dur))
	case err == nil:
		e.log.Debug("datapath applied", zap.Bool("full", full), zap.Duration("took", dur))
	}
}
