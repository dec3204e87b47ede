package netcluster

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// EchoServer echoes every TCP connection back to its sender until EOF.
type EchoServer struct {
	Addr netip.AddrPort // the address it listens on
	NS   string

	ln     net.Listener
	conns  atomic.Int64
	mu     sync.Mutex
	peers  []netip.AddrPort
	active map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	once   sync.Once
}

// ServeTCP starts an echo server whose listening socket lives in ns. The
// server is closed at test cleanup.
func ServeTCP(t testing.TB, ns string, addr netip.AddrPort) *EchoServer {
	t.Helper()
	s, err := serveTCP(ns, addr)
	if err != nil {
		t.Fatalf("netcluster: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func serveTCP(ns string, addr netip.AddrPort) (*EchoServer, error) {
	s := &EchoServer{NS: ns, active: map[net.Conn]struct{}{}}
	err := Do(ns, func() error {
		ln, err := net.Listen("tcp", addr.String())
		s.ln = ln
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("serve tcp %s in %s: %w", addr, ns, err)
	}
	s.Addr = s.ln.Addr().(*net.TCPAddr).AddrPort()
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

func (s *EchoServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.conns.Add(1)
		s.mu.Lock()
		if s.closed { // accepted while Close ran: Close did not see it
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.peers = append(s.peers, conn.RemoteAddr().(*net.TCPAddr).AddrPort())
		s.active[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.active, conn)
				s.mu.Unlock()
				conn.Close()
			}()
			_ = conn.SetDeadline(time.Now().Add(time.Minute))
			_, _ = io.Copy(conn, conn)
		}()
	}
}

// Conns returns how many connections the server has accepted.
func (s *EchoServer) Conns() int { return int(s.conns.Load()) }

// Peers returns the source address of each accepted connection, so a test
// can check that a Service rewrite kept the client pod's address.
func (s *EchoServer) Peers() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.peers...)
}

// Close stops the server, drops open connections and waits for its
// goroutines.
func (s *EchoServer) Close() {
	s.once.Do(func() {
		_ = s.ln.Close()
		s.mu.Lock()
		s.closed = true
		for conn := range s.active {
			_ = conn.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// DialTCP connects from ns to addr, sends payload, half-closes and returns
// everything the server sent back before closing.
func DialTCP(ns string, addr netip.AddrPort, payload []byte, timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	var conn net.Conn
	err := Do(ns, func() error {
		var err error
		// The socket is created and connected on this (namespaced) thread;
		// with a literal address the dialer spawns no helper goroutines.
		conn, err = net.DialTimeout("tcp", addr.String(), timeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", addr, ns, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := conn.Write(payload); err != nil {
		return nil, fmt.Errorf("write to %s from %s: %w", addr, ns, err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return nil, fmt.Errorf("half-close to %s from %s: %w", addr, ns, err)
	}
	got, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, io.EOF) {
		return got, fmt.Errorf("read from %s in %s: %w", addr, ns, err)
	}
	return got, nil
}
