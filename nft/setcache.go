package nft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// setCache holds the elements of the sets an incremental update wrote, as
// they are in the kernel right after it, and the ruleset generation they
// are valid for. The kernel bumps the generation on every commit in the
// namespace, so while it is unchanged nothing (no Apply, no nft on the
// command line, no other process) can have touched the sets, and the next
// update can plan from the cache instead of dumping a set of thousands of
// elements: at 5000 nodes that dump was most of the nft cost of a Node
// event.
type setCache struct {
	gen  uint32
	sets map[string][]nftables.SetElement // by set name
}

// cachedElements returns set's elements from the cache if it is valid at
// generation gen.
func (c *setCache) cachedElements(gen uint32, set *nftables.Set) ([]nftables.SetElement, bool) {
	if c == nil || c.gen != gen {
		return nil, false
	}
	els, ok := c.sets[set.Name]
	return els, ok
}

// afterUpdate returns els as the kernel holds them once del and put are
// committed: an element is its key and whether it ends an interval, and
// the kernel holds each at most once.
func afterUpdate(els, del, put []nftables.SetElement) []nftables.SetElement {
	id := func(e nftables.SetElement) string {
		if e.IntervalEnd {
			return "e" + string(e.Key)
		}
		return "s" + string(e.Key)
	}
	gone := make(map[string]bool, len(del))
	for _, e := range del {
		gone[id(e)] = true
	}
	out := make([]nftables.SetElement, 0, len(els)+len(put))
	have := make(map[string]bool, len(els)+len(put))
	for _, e := range els {
		if k := id(e); !gone[k] && !have[k] {
			have[k] = true
			out = append(out, e)
		}
	}
	for _, e := range put {
		if k := id(e); !have[k] {
			have[k] = true
			out = append(out, e)
		}
	}
	return out
}

// genConn opens a socket for generation queries; the caller releases it.
func (m *Manager) genConn() (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: m.netnsFD})
	if err != nil {
		return nil, fmt.Errorf("nftables generation: %w", err)
	}
	return c, nil
}

// generation returns the namespace's nftables ruleset generation
// (NFT_MSG_GETGEN), which every commit increments.
func generation(c *netlink.Conn) (uint32, error) {
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request,
		},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}, // struct nfgenmsg
	}
	msgs, err := c.Execute(req)
	if err != nil {
		return 0, fmt.Errorf("nftables generation: %w", err)
	}
	for _, msg := range msgs {
		if msg.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWGEN) || len(msg.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(msg.Data[4:])
		if err != nil {
			return 0, fmt.Errorf("nftables generation: %w", err)
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
		if err := ad.Err(); err != nil {
			return 0, fmt.Errorf("nftables generation: %w", err)
		}
	}
	return 0, errors.New("nftables generation: no NFTA_GEN_ID in the answer")
}
