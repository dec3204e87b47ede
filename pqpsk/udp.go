package pqpsk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// DefaultPort is the key exchange's default UDP port.
const DefaultPort = 51821

// UDP is the transport the agent uses: one socket in the node's network
// namespace. Its packets leave by the output path to node addresses,
// which crosswire never marks into the tunnel (docs/post-quantum.md,
// "Transport").
type UDP struct {
	conn *net.UDPConn
}

// ListenUDP opens the socket on port (all addresses, both families).
func ListenUDP(port uint16) (*UDP, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{Port: int(port)})
	if err != nil {
		return nil, fmt.Errorf("post-quantum key exchange: listen on UDP port %d: %w", port, err)
	}
	return &UDP{conn: c}, nil
}

// Port is the local port (the kernel's pick if ListenUDP got 0).
func (u *UDP) Port() uint16 { return uint16(u.conn.LocalAddr().(*net.UDPAddr).Port) }

// Send sends one datagram.
func (u *UDP) Send(to netip.AddrPort, b []byte) error {
	if !to.IsValid() {
		return errors.New("no address")
	}
	_, err := u.conn.WriteToUDPAddrPort(b, to)
	return err
}

// Serve hands every datagram to handle until ctx ends or the socket is
// closed.
func (u *UDP) Serve(ctx context.Context, handle func(from netip.AddrPort, b []byte)) error {
	stop := context.AfterFunc(ctx, func() { u.conn.Close() })
	defer stop()
	buf := make([]byte, MaxMessageSize+1) // one more: an oversized datagram stays oversized
	for {
		n, from, err := u.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("post-quantum key exchange: read: %w", err)
		}
		handle(netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), buf[:n])
	}
}

// Close closes the socket.
func (u *UDP) Close() error { return u.conn.Close() }
