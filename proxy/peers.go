package proxy

// Peers returns the desired peers, sorted by name.
func (e *Engine) Peers() []Peer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.status.Known {
		return nil
	}
	return e.want.sortedPeers()
}
