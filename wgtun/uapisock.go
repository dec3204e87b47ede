package wgtun

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/crosswire/crosswire/internal/unixsock"
)

// uapiServer serves the UAPI protocol on <dir>/<name>.sock, the path wg(8)
// looks for when dir is /var/run/wireguard. We listen ourselves instead of
// using ipc.UAPIOpen because that one hard-codes the directory.
type uapiServer struct {
	path   string
	ln     *net.UnixListener
	handle func(net.Conn)
	log    *zap.Logger

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func listenUAPI(dir, name string, handle func(net.Conn), log *zap.Logger) (*uapiServer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create UAPI socket directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, name+".sock")
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}

	// The socket answers "get" with the private key, so it must never be
	// reachable with a loose mode, not even between bind and chmod.
	ln, err := unixsock.Listen(path)
	if err != nil {
		return nil, fmt.Errorf("UAPI socket: %w", err)
	}

	s := &uapiServer{path: path, ln: ln, handle: handle, log: log, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// removeStaleSocket deletes a socket left behind by a previous process, but
// refuses to steal one that something still answers on (another device of the
// same name in another namespace sharing the directory, say), and refuses to
// delete anything that is not a socket.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat UAPI socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("UAPI socket path %s exists and is not a socket (%s)", path, fi.Mode())
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("UAPI socket %s is in use by another process", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale UAPI socket %s: %w", path, err)
	}
	return nil
}

func (s *uapiServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Typically EMFILE: back off instead of spinning.
			s.log.Warn("accept on UAPI socket", zap.String("path", s.path), zap.Error(err))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if !s.track(c) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.handle(c) // closes c
		}()
	}
}

func (s *uapiServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *uapiServer) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// close stops accepting, hangs up on clients still connected (a wg(8) that
// stalls must not keep the device alive) and removes the socket file.
func (s *uapiServer) close() error {
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, fmt.Errorf("remove UAPI socket %s: %w", s.path, rerr))
	}
	return err
}
