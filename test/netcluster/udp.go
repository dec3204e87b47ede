package netcluster

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// UDPEchoServer sends every datagram back to its sender.
type UDPEchoServer struct {
	Addr netip.AddrPort
	NS   string

	conn  *net.UDPConn
	count atomic.Int64
	wg    sync.WaitGroup
	once  sync.Once
}

// ServeUDP starts a UDP echo server whose socket lives in ns; it is closed at
// test cleanup.
func ServeUDP(t testing.TB, ns string, addr netip.AddrPort) *UDPEchoServer {
	t.Helper()
	s := &UDPEchoServer{NS: ns}
	err := Do(ns, func() error {
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		s.conn = conn
		return err
	})
	if err != nil {
		t.Fatalf("netcluster: serve udp %s in %s: %v", addr, ns, err)
	}
	s.Addr = s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

func (s *UDPEchoServer) serve() {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return // closed
		}
		s.count.Add(1)
		_, _ = s.conn.WriteToUDPAddrPort(buf[:n], from)
	}
}

// Datagrams returns how many datagrams the server has echoed.
func (s *UDPEchoServer) Datagrams() int { return int(s.count.Load()) }

// Close stops the server and waits for its goroutine.
func (s *UDPEchoServer) Close() {
	s.once.Do(func() {
		_ = s.conn.Close()
		s.wg.Wait()
	})
}

// ExchangeUDP sends payload from a socket in ns to addr and returns the
// first datagram that comes back. A connected socket accepts only replies
// from addr, which a Service's reverse NAT must restore.
func ExchangeUDP(ns string, addr netip.AddrPort, payload []byte, timeout time.Duration) ([]byte, error) {
	var conn *net.UDPConn
	err := Do(ns, func() error {
		var err error
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial udp %s from %s: %w", addr, ns, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := conn.Write(payload); err != nil {
		return nil, fmt.Errorf("send udp to %s from %s: %w", addr, ns, err)
	}
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("receive udp from %s in %s: %w", addr, ns, err)
	}
	return buf[:n], nil
}
