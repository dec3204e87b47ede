package wgtun

import "sync"

// Replayed handshake initiations. wireguard-go rejects an initiation whose
// timestamp is not newer than the last one it accepted from that peer, but
// it keeps that timestamp with the peer: a peer removed (trimmed) and
// configured again accepts any initiation ever captured from the wire once
// more. The handshake cannot complete (the sender lacks the keys), but
// wireguard-go answers it and moves the peer's endpoint to the sender's
// address, so our traffic to that peer goes astray until the real peer's
// next message. With on-demand peers every trim resets that state, so the
// receive path drops byte-identical copies of recent initiations before
// wireguard-go sees them. WireGuard never sends an initiation twice (each
// has a fresh ephemeral key and timestamp), so an identical copy is always
// a replay. Initiations are told apart by their mac1, a MAC over all of
// the message before it. The cache holds the last replayCacheSize
// initiations with a valid mac1 from any source; an older capture is not
// caught here (docs/design.md says what bounds it then).
const replayCacheSize = 4096

type replayCache struct {
	mu   sync.Mutex
	seen map[[macSize]byte]struct{}
	ring [][macSize]byte
	next int
}

func newReplayCache(size int) *replayCache {
	return &replayCache{seen: make(map[[macSize]byte]struct{}, size), ring: make([][macSize]byte, 0, size)}
}

// replayed reports whether the initiation msg (with a valid mac1) was seen
// before, and remembers it if not.
func (c *replayCache) replayed(msg []byte) bool {
	end := len(msg) - 2*macSize
	k := [macSize]byte(msg[end : end+macSize])
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[k]; ok {
		return true
	}
	if len(c.ring) < cap(c.ring) {
		c.ring = append(c.ring, k)
	} else {
		delete(c.seen, c.ring[c.next])
		c.ring[c.next] = k
		c.next = (c.next + 1) % len(c.ring)
	}
	c.seen[k] = struct{}{}
	return false
}
