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
	st.Fenced = slices.Clone(st.Fenced)
	st.Rejected = slices.Clone(st.Rejected)
	m.fn(st)
}

// applyTo returns st with c applied; st's slices are not modified.
func (c Change) applyTo(st State) State {
	st.Peers = patch(st.Peers, c.Upsert, c.Remove)
	st.Fenced = patch(st.Fenced, c.Fence, c.Unfence)
	st.SelfFound, st.Local = c.SelfFound, c.Local
	if c.RejectedChanged {
		st.Rejected = c.Rejected
	}
	return st
}

// patch returns peers without those named in remove or upsert, plus
// upsert, sorted by name; nil when empty.
func patch(peers, upsert []proxy.Peer, remove []string) []proxy.Peer {
	gone := make(map[string]bool, len(remove)+len(upsert))
	for _, name := range remove {
		gone[name] = true
	}
	for _, p := range upsert {
		gone[p.Name] = true
	}
	var out []proxy.Peer
	for _, p := range peers {
		if !gone[p.Name] {
			out = append(out, p)
		}
	}
	out = append(out, upsert...)
	slices.SortFunc(out, func(a, b proxy.Peer) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
