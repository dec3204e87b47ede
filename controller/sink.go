package controller

import (
	"cmp"
	"slices"

	"github.com/crosswire/crosswire/proxy"
)

// Sink receives the desired state from a source: whole with Replace (at
// start, and when a full rebuild finds the state different from the one
// the changes led to), then one Change at a time with Apply. Both are
// called from one goroutine.
type Sink interface {
	Replace(State)
	Apply(Change)
}

// Materialize returns a Sink that keeps the whole state and calls fn with
// a copy of it after every Replace and every non-empty Change. It costs
// time proportional to the cluster per change: for tests and small tools,
// not for the agent.
func Materialize(fn func(State)) Sink { return &materializer{fn: fn} }

type materializer struct {
	st State
	fn func(State)
}

func (m *materializer) Replace(st State) {
	m.st = st
	m.emit()
}

func (m *materializer) Apply(c Change) {
	if c.Empty() {
		return
	}
	m.st = c.applyTo(m.st)
	m.emit()
}

func (m *materializer) emit() {
	st := m.st
	st.Local = slices.Clone(st.Local)
	st.Peers = slices.Clone(st.Peers)
	st.Rejected = slices.Clone(st.Rejected)
	m.fn(st)
}

// applyTo returns st with c applied; st's slices are not modified.
func (c Change) applyTo(st State) State {
	gone := make(map[string]bool, len(c.Remove)+len(c.Upsert))
	for _, name := range c.Remove {
		gone[name] = true
	}
	for _, p := range c.Upsert {
		gone[p.Name] = true
	}
	peers := make([]proxy.Peer, 0, len(st.Peers)+len(c.Upsert))
	for _, p := range st.Peers {
		if !gone[p.Name] {
			peers = append(peers, p)
		}
	}
	peers = append(peers, c.Upsert...)
	slices.SortFunc(peers, func(a, b proxy.Peer) int { return cmp.Compare(a.Name, b.Name) })
	st.Peers = peers
	st.SelfFound, st.Local = c.SelfFound, c.Local
	if c.RejectedChanged {
		st.Rejected = c.Rejected
	}
	return st
}
