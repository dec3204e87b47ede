package nft

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Watch calls changed whenever a program other than this Manager changes
// crosswire's table or its guard (a rule, chain, set, element or the
// table itself), until ctx ends. The agent then repairs at once instead
// of at its next resync: the guard table keeps a flushed table from
// leaking, but pod traffic to other nodes is dropped until the repair.
//
// It listens to the kernel's nftables notifications (the events `nft
// monitor` shows). Each carries the netlink port ID of the socket whose
// batch made the change; the Manager records the port IDs of its own
// sockets (conn), so its own applies and updates are told apart without
// relying on process IDs, which differ inside a container's PID
// namespace. When the kernel drops notifications because the socket's
// buffer overflowed (a full apply of a large cluster notifies every
// element), Watch cannot tell whose they were and calls changed: a
// resync that finds nothing costs one read-back.
func (m *Manager) Watch(ctx context.Context, changed func()) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: m.netnsFD})
	if err != nil {
		return fmt.Errorf("nftables notifications: %w", err)
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.Close()
		return fmt.Errorf("nftables notifications: %w", err)
	}
	// Best effort: a larger buffer overflows later; overflowing is
	// handled below.
	_ = c.SetReadBuffer(watchBuffer)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		if stop() {
			c.Close()
		}
	}()
	for {
		msgs, err := c.Receive()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			changed()
			continue
		case err != nil:
			return fmt.Errorf("nftables notifications: %w", err)
		}
		for _, msg := range msgs {
			if m.foreignChange(msg) {
				changed()
				break
			}
		}
	}
}

// watchBuffer is the notification socket's receive buffer: room for the
// notifications of an incremental update many times over.
const watchBuffer = 4 << 20

// foreignChange reports whether msg notifies a change to one of the
// Manager's tables made through a socket that is not the Manager's.
func (m *Manager) foreignChange(msg netlink.Message) bool {
	if msg.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES {
		return false
	}
	switch msg.Header.Type & 0xff {
	case unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE, unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELCHAIN,
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELRULE, unix.NFT_MSG_NEWSET, unix.NFT_MSG_DELSET,
		unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM:
	default:
		return false
	}
	// struct nfgenmsg, then attributes; the table's name is attribute 1
	// in every one of these messages (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE,
	// NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE).
	if len(msg.Data) < 4 || msg.Data[0] != byte(nftables.TableFamilyINet) {
		return false
	}
	ad, err := netlink.NewAttributeDecoder(msg.Data[4:])
	if err != nil {
		return false
	}
	for ad.Next() {
		if ad.Type() != 1 {
			continue
		}
		name := ad.String()
		if name != m.table.Name && name != m.guard.Name {
			return false
		}
		return !m.ports.has(msg.Header.PID)
	}
	return false
}

// portIDs remembers the netlink port IDs of the Manager's recent sockets.
// A closed socket's ID can be taken by another socket later; keeping only
// the last few bounds that to IDs of sockets closed long ago.
type portIDs struct {
	mu   sync.Mutex
	ids  [64]uint32
	next int
}

func (p *portIDs) add(id uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids[p.next%len(p.ids)] = id
	p.next++
}

func (p *portIDs) has(id uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range min(p.next, len(p.ids)) {
		if p.ids[i] == id {
			return true
		}
	}
	return false
}

// recordPort is a socket option that records the socket's port ID.
func (m *Manager) recordPort(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink port ID: %w", err)
	}
	var (
		sa   unix.Sockaddr
		serr error
	)
	if err := rc.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return fmt.Errorf("netlink port ID: %w", err)
	}
	nl, ok := sa.(*unix.SockaddrNetlink)
	if serr != nil || !ok {
		return fmt.Errorf("netlink port ID: %v (%T)", serr, sa)
	}
	m.ports.add(nl.Pid)
	return nil
}
