package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiserverArgv is a standalone kube-apiserver: no controller-manager,
// scheduler or kubelets exist, so anything that waits on them is off.
func apiserverArgv(bin, dir, etcdURL string, bind netip.Addr, port int) []string {
	f := func(name string) string { return filepath.Join(dir, name) }
	return []string{bin,
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + bind.String(),
		// Set explicitly: left empty, kube-apiserver derives it from the
		// default route, which an isolated namespace does not have.
		"--advertise-address=" + bind.String(),
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + f("certs"), // never the default /var/run/kubernetes
		"--tls-cert-file=" + f("apiserver.crt"),
		"--tls-private-key-file=" + f("apiserver.key"),
		"--client-ca-file=" + f("ca.crt"),
		"--token-auth-file=" + f("tokens.csv"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + f("sa.pub"),
		"--service-account-signing-key-file=" + f("sa.key"),
		// As in a real cluster: RBAC denies by default; the Node authorizer
		// and NodeRestriction scope system:node:<name> identities.
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		// ServiceAccount admission rejects pods until the controller-manager
		// has created each namespace's default ServiceAccount; there is none.
		"--disable-admission-plugins=ServiceAccount",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		// The kubernetes Service's endpoints would point at the bind
		// address, which validation rejects when it is loopback; nothing
		// here routes to it anyway.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--v=1",
	}
}

// fullClusterArgv turns a standalone argv into one for a full cluster (see
// Options.FullCluster): the standalone-only flags go, the kubelet client
// flags come.
func fullClusterArgv(argv []string, dir string) []string {
	var out []string
	for _, a := range argv {
		if a == "--disable-admission-plugins=ServiceAccount" || a == "--endpoint-reconciler-type=none" {
			continue
		}
		out = append(out, a)
	}
	return append(out,
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--kubelet-client-certificate="+filepath.Join(dir, "kubelet-client.crt"),
		"--kubelet-client-key="+filepath.Join(dir, "kubelet-client.key"),
	)
}

// startAPIServer launches kube-apiserver with the saved arguments and waits
// for /readyz.
func (s *Server) startAPIServer() error {
	p, err := startProcess("kube-apiserver", s.opts.NetNS, filepath.Join(s.Dir, "kube-apiserver.log"), s.apiArgv, s.detached)
	if err != nil {
		return err
	}
	s.apiserver = p
	if err := s.writePID(p); err != nil {
		return err
	}
	return s.waitReady(p)
}

// waitReady polls /readyz as the admin until it answers "ok", the process
// exits, or readyTimeout passes.
func (s *Server) waitReady(p *process) error {
	cfg := rest.CopyConfig(s.Admin)
	cfg.Timeout = 2 * time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("readiness client: %w", err)
	}
	start := time.Now()
	var last error
	for time.Since(start) < readyTimeout {
		if done, err := p.exited(); done {
			return fmt.Errorf("kube-apiserver exited before becoming ready (%v); last lines of %s:\n%s",
				err, p.logPath, p.tail(40))
		}
		last = readyz(c)
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready after %v: %v; last lines of %s:\n%s",
		readyTimeout, last, p.logPath, p.tail(40))
}

func readyz(c kubernetes.Interface) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("/readyz: %w: %s", err, body)
	}
	if string(body) != "ok" {
		return fmt.Errorf("/readyz answered %q", body)
	}
	return nil
}

var errStopped = errors.New("server was stopped")

// StopAPIServer kills kube-apiserver alone (etcd and its data stay), to
// simulate an API outage: open connections break and new ones are refused
// until StartAPIServer.
func (s *Server) StopAPIServer(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		t.Fatalf("StopAPIServer: %v", errStopped)
	}
	s.apiserver.stop(apiserverGrace)
}

// StartAPIServer starts kube-apiserver again, on the same address, port,
// certificates and etcd, and waits until it is ready. A no-op while it runs.
func (s *Server) StartAPIServer(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		t.Fatalf("StartAPIServer: %v", errStopped)
	}
	if done, _ := s.apiserver.exited(); !done {
		return
	}
	if err := s.startAPIServer(); err != nil {
		t.Fatalf("StartAPIServer: %v", err)
	}
}

// RestartAPIServer is StopAPIServer followed by StartAPIServer.
func (s *Server) RestartAPIServer(t testing.TB) {
	t.Helper()
	s.StopAPIServer(t)
	s.StartAPIServer(t)
}

// StopAPIServerFor stops kube-apiserver, waits d, and starts it again. It
// blocks for the whole outage; run the code under test concurrently.
func (s *Server) StopAPIServerFor(t testing.TB, d time.Duration) {
	t.Helper()
	s.StopAPIServer(t)
	time.Sleep(d)
	s.StartAPIServer(t)
}

// PauseAPIServer freezes kube-apiserver with SIGSTOP: unlike a stop,
// connections stay open and requests hang instead of failing, which is how
// an overloaded or partitioned API server looks to a client.
func (s *Server) PauseAPIServer(t testing.TB) {
	t.Helper()
	s.signalAPIServer(t, syscall.SIGSTOP)
}

// ResumeAPIServer undoes PauseAPIServer.
func (s *Server) ResumeAPIServer(t testing.TB) {
	t.Helper()
	s.signalAPIServer(t, syscall.SIGCONT)
}

func (s *Server) signalAPIServer(t testing.TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		t.Fatalf("signal kube-apiserver: %v", errStopped)
	}
	if err := s.apiserver.signal(sig); err != nil {
		t.Fatal(err)
	}
}
