package nft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// generation returns the namespace's nftables ruleset generation, which
// every commit increments. It asks on a socket the Manager keeps, not one
// per operation: closing a netfilter socket takes the commit mutex and
// waits for the kernel to free what recent commits deleted (see release),
// once more per update in a burst of Node events, and a query, unlike a
// batch, leaves nothing on its socket for the next one. After an error the
// socket is dropped, since a late answer could be taken for the next one.
// The caller holds m.mu.
func (m *Manager) generation() (uint32, error) {
	if m.genSock == nil {
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: m.netnsFD})
		if err != nil {
			return 0, fmt.Errorf("nftables generation: %w", err)
		}
		m.genSock = c
	}
	gen, err := queryGeneration(m.genSock)
	if err != nil {
		m.release(m.genSock.Close)
		m.genSock = nil
	}
	return gen, err
}

// queryGeneration asks for the ruleset generation on c (NFT_MSG_GETGEN).
func queryGeneration(c *netlink.Conn) (uint32, error) {
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
