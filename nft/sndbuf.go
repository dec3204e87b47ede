package nft

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The kernel takes a whole nftables transaction in one sendmsg, and
// refuses one longer than the socket's send buffer (EMSGSIZE, "message too
// long"): 212 992 bytes by default (net.core.wmem_default), about 5000
// IPv4 prefixes in one table. Apply must be one transaction (packets see
// the old tables or the new ones), so instead of splitting it, the socket
// that sends it gets a buffer sized for it, as nft does for its own
// batches.

// bytesPerElement bounds one interval element in a batch: the nested list
// entry, the key (an IPv6 address at most) and the flags.
const bytesPerElement = 64

// batchOverhead covers the table, set, chain and rule messages and the
// batch's begin and end.
const batchOverhead = 64 << 10

// applyBufferSize is the send buffer a batch creating rss needs.
func applyBufferSize(rss []*Ruleset) int {
	n := 0
	for _, rs := range rss {
		for _, s := range rs.Sets {
			n += len(s.Elements)
		}
	}
	return batchOverhead + n*bytesPerElement
}

// sendBuffer sets the socket's send buffer to at least bytes. The kernel
// doubles the value it is given and refuses a message longer than the
// result less a little, so half of a generous estimate suffices.
// SO_SNDBUFFORCE (CAP_NET_ADMIN, which the agent has) ignores
// net.core.wmem_max; without it, SO_SNDBUF is capped there.
func sendBuffer(bytes int) nftables.SockOption {
	return func(c *netlink.Conn) error {
		rc, err := c.SyscallConn()
		if err != nil {
			return fmt.Errorf("send buffer: %w", err)
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, bytes)
			if serr != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, bytes)
			}
		}); err != nil {
			return fmt.Errorf("send buffer: %w", err)
		}
		if serr != nil {
			return fmt.Errorf("send buffer of %d bytes: %w", bytes, serr)
		}
		return nil
	}
}
