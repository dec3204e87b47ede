package apiserver

import (
	"fmt"
	"path/filepath"
)

// RestartEtcd stops etcd (SIGTERM, SIGKILL after its grace) and starts it
// again on the same data, ports and flags, and returns once it is
// healthy. kube-apiserver stays up and reconnects by itself: meanwhile its
// requests fail or wait, as with a real etcd restart under a control
// plane.
func (s *Server) RestartEtcd() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return fmt.Errorf("restart etcd: %w", errStopped)
	}
	s.etcd.stop(etcdGrace)
	p, err := startProcess("etcd", s.opts.NetNS, filepath.Join(s.Dir, "etcd.log"), s.etcdArgv, s.detached)
	if err != nil {
		return fmt.Errorf("restart etcd: %w", err)
	}
	s.etcd = p
	if err := s.writePID(p); err != nil {
		return err
	}
	if err := s.waitEtcd(s.etcdURL); err != nil {
		return fmt.Errorf("restart etcd: %w", err)
	}
	return nil
}
