package proxy

import (
	"net/netip"
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
	Peers        []PeerStatus
}

// PeerStatus is one peer as configured.
type PeerStatus struct {
	Name     string
	HasKey   bool
	Endpoint netip.AddrPort
	PodCIDRs []netip.Prefix
}

func peerStatus(peers []Peer) []PeerStatus {
	out := make([]PeerStatus, 0, len(peers))
	for _, p := range peers {
		out = append(out, PeerStatus{
			Name: p.Name, HasKey: !p.PublicKey.IsZero(),
			Endpoint: p.Endpoint, PodCIDRs: slices.Clone(p.PodCIDRs),
		})
	}
	return out
}

// Status returns a copy of the current status.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.status
	s.Peers = slices.Clone(s.Peers)
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
	e.mu.Unlock()

	switch {
	case len(repairs) > 0 && adopting:
		e.log.Info("adopted existing datapath", zap.Strings("changes", repairs), zap.Duration("took", dur))
	case len(repairs) > 0:
		e.log.Warn("repaired drift", zap.Strings("repairs", repairs), zap.Duration("took", dur))
	case err == nil:
		e.log.Debug("datapath applied", zap.Bool("full", full), zap.Duration("took", dur))
	}
}
