package apiserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// LaunchOptions configures Launch: Start's options plus what a program
// outside a test (the demo) needs.
type LaunchOptions struct {
	Options
	// Dir holds certificates, the CA key, etcd's data, both logs
	// (etcd.log, kube-apiserver.log) and pid files (etcd.pid,
	// kube-apiserver.pid). Required; created if missing; must not hold
	// another server. Never removed by this package.
	Dir string
	// Detached lets etcd and kube-apiserver outlive the calling process: no
	// parent-death signal, each in its own session. Stop them with
	// StopDir(Dir) from any process, or Stop from this one.
	Detached bool
}

// Files in a Launch directory besides Start's.
const (
	attachFile = "server.json" // what Attach needs besides the CA
	caKeyFile  = "ca.key"      // lets Attach mint identities later
)

type attachInfo struct {
	URL         string `json:"url"`
	NetNS       string `json:"netns,omitempty"`
	BindAddress string `json:"bindAddress"`
}

// Launch is Start for programs: no testing.TB, an explicit directory, and
// optionally detached processes. It returns once /readyz answers ok. On
// error it stops whatever it started and leaves Dir (with the logs) behind.
func Launch(o LaunchOptions) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("apiserver.Launch: Dir is required")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("apiserver.Launch: %w", err)
	}
	opts := o.Options.withDefaults()
	etcdBin, apiBin, err := binaries(opts.ToolsDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("apiserver.Launch: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, attachFile)); err == nil {
		return nil, fmt.Errorf("apiserver.Launch: %s already holds a server (StopDir it and remove the directory first)", dir)
	}
	s := &Server{opts: opts, Dir: dir, detached: o.Detached}
	if err := s.launch(etcdBin, apiBin); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.saveAttachInfo(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) saveAttachInfo() error {
	info, err := json.MarshalIndent(attachInfo{URL: s.URL, NetNS: s.opts.NetNS, BindAddress: s.opts.BindAddress.String()}, "", "  ")
	if err != nil {
		return err
	}
	key, err := s.ca.keyPEM()
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{caKeyFile: key, attachFile: append(info, '\n')} {
		if err := os.WriteFile(filepath.Join(s.Dir, name), b, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

// Attach returns a handle on the server an earlier process Launched in dir:
// Admin, AdminToken, URL, CAData, NewUser and WriteKubeconfig work (Admin is
// a fresh certificate for the same admin identity). It has no process
// handles: Stop does nothing and the outage helpers fail; StopDir stops the
// processes.
func Attach(dir string) (*Server, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("apiserver.Attach: %w", err)
		}
		return b, nil
	}
	raw, err := read(attachFile)
	if err != nil {
		return nil, err
	}
	var info attachInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("apiserver.Attach: %s: %w", attachFile, err)
	}
	bind, err := netip.ParseAddr(info.BindAddress)
	if err != nil {
		return nil, fmt.Errorf("apiserver.Attach: %s: %w", attachFile, err)
	}
	certPEM, err := read("ca.crt")
	if err != nil {
		return nil, err
	}
	keyPEM, err := read(caKeyFile)
	if err != nil {
		return nil, err
	}
	c, err := loadCA(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("apiserver.Attach: %w", err)
	}
	s := &Server{URL: info.URL, CAData: certPEM, Dir: dir, ca: c, stopped: true,
		opts: Options{NetNS: info.NetNS, BindAddress: bind}.withDefaults()}
	if tokens, err := read("tokens.csv"); err == nil {
		s.AdminToken, _, _ = strings.Cut(string(tokens), ",")
	}
	adminCert, adminKey, err := c.clientCert("crosswire-test-admin", []string{"system:masters"})
	if err != nil {
		return nil, err
	}
	s.Admin = s.restConfig(adminCert, adminKey)
	return s, nil
}

// NewUser is AddUser for callers without a testing.TB.
func (s *Server) NewUser(user string, groups ...string) (*rest.Config, error) {
	cert, key, err := s.ca.clientCert(user, groups)
	if err != nil {
		return nil, fmt.Errorf("new user %q: %w", user, err)
	}
	return s.restConfig(cert, key), nil
}

// WriteKubeconfig is Kubeconfig for callers without a testing.TB.
func (s *Server) WriteKubeconfig(cfg *rest.Config, path string) error {
	return writeKubeconfig(cfg, path)
}

// writePID records p's pid (also its process group) as <name>.pid in Dir,
// for StopDir.
func (s *Server) writePID(p *process) error {
	path := filepath.Join(s.Dir, p.name+".pid")
	if err := os.WriteFile(path, []byte(strconv.Itoa(p.cmd.Process.Pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// StopDir stops the kube-apiserver and etcd that a server in dir started,
// found by their pid files, even from another process: kube-apiserver is
// killed, etcd gets SIGTERM and SIGKILL after a grace period, and StopDir
// waits until both are gone. A pid whose command line does not name dir
// (the process ended and the pid was reused) is left alone. It removes the
// pid files and returns what it stopped, e.g. "kube-apiserver (pid 42)";
// nothing to stop is not an error. The directory itself stays.
func StopDir(dir string) ([]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var stopped []string
	var errs []error
	for _, x := range []struct {
		name  string
		grace time.Duration
	}{{"kube-apiserver", apiserverGrace}, {"etcd", etcdGrace}} {
		path := filepath.Join(dir, x.name+".pid")
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			errs = append(errs, fmt.Errorf("%s: bad pid %q", path, b))
			continue
		}
		if runsFrom(pid, dir) {
			if err := stopPID(pid, x.grace); err != nil {
				errs = append(errs, fmt.Errorf("stop %s (pid %d): %w", x.name, pid, err))
				continue
			}
			stopped = append(stopped, fmt.Sprintf("%s (pid %d)", x.name, pid))
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return stopped, errors.Join(errs...)
}

// runsFrom reports whether pid is alive and its command line names dir.
func runsFrom(pid int, dir string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || processDead(pid) {
		return false
	}
	return bytes.Contains(cmdline, []byte(dir+string(filepath.Separator)))
}

// stopPID signals pid's process group (pid alone if it leads none): SIGTERM
// then SIGKILL after grace (at once if grace is 0), and waits until it is
// gone.
func stopPID(pid int, grace time.Duration) error {
	target := pid
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		target = -pid
	}
	kill := func(sig syscall.Signal) error {
		if err := syscall.Kill(target, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	waitGone := func(d time.Duration) bool {
		deadline := time.Now().Add(d)
		for !processDead(pid) {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}
	if grace > 0 {
		if err := kill(syscall.SIGTERM); err != nil {
			return err
		}
		_ = kill(syscall.SIGCONT)
		if waitGone(grace) {
			return nil
		}
	}
	if err := kill(syscall.SIGKILL); err != nil {
		return err
	}
	if !waitGone(5 * time.Second) {
		return errors.New("survives SIGKILL")
	}
	return nil
}

// processDead reports whether pid is gone or a zombie (it holds nothing any
// more; its parent, or init, reaps it).
func processDead(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}

// keyPEM returns the CA's private key, for Attach.
func (c *ca) keyPEM() ([]byte, error) {
	k, ok := c.key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("CA key is a %T, want ECDSA", c.key)
	}
	return ecKeyPEM(k)
}

// loadCA is the inverse of newCA plus keyPEM.
func loadCA(certPEM, keyPEM []byte) (*ca, error) {
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New("CA certificate or key is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA key: %w", err)
	}
	return &ca{cert: cert, key: key, certPEM: certPEM}, nil
}
