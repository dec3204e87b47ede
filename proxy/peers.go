package proxy

import "slices"

// Peers returns the desired peers last recorded by Update.
func (e *Engine) Peers() []Peer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.desired == nil {
		return nil
	}
	return slices.Clone(e.desired.Peers)
}
