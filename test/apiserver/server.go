package apiserver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/crosswire/crosswire/internal/testenv"
)

// Server is a running etcd plus kube-apiserver pair.
type Server struct {
	// URL is kube-apiserver's base URL, https://<BindAddress>:<port>.
	URL string
	// Admin authenticates as a member of system:masters (cluster-admin). When
	// Options.NetNS is set, it dials from inside that namespace, so it works
	// from the test process wherever the server lives.
	Admin *rest.Config
	// AdminToken is a static bearer token (--token-auth-file) for the same
	// identity, for curl-like checks and tools that prefer tokens.
	AdminToken string
	// CAData is the PEM CA that signed the serving and all client
	// certificates.
	CAData []byte
	// Dir holds certificates, etcd data and both processes' logs
	// (etcd.log, kube-apiserver.log). Removed when the test ends.
	Dir string

	opts Options
	ca   *ca

	mu        sync.Mutex
	etcd      *process
	apiserver *process
	apiArgv   []string
	etcdArgv  []string // without the netns prefix, for RestartEtcd
	etcdURL   string
	stopped   bool
	// detached processes survive this one (Launch with Detached).
	detached bool
}

// Stop grace periods. kube-apiserver is killed outright: its graceful
// shutdown stops listening at once but then lingers ~5 s on open watches,
// which only slows tests, and a crash is the harsher outage for clients.
// etcd exits promptly on SIGTERM.
const (
	apiserverGrace = 0
	etcdGrace      = 5 * time.Second
	readyTimeout   = 60 * time.Second
	etcdTimeout    = 20 * time.Second
)

// Start runs etcd and kube-apiserver and returns once /readyz answers ok.
// Both are stopped, and their directory removed, when the test ends
// (including on failure, when the tails of their logs are logged first).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	o = o.withDefaults()
	// Without the built binaries a developer's `go test ./...` skips, with
	// the command that builds them; CI and root fail (testenv).
	if _, _, err := binaries(o.ToolsDir); err != nil {
		testenv.Missing(t, "%v", err)
	}
	s, err := start(t, o)
	if err != nil {
		t.Fatalf("apiserver.Start: %v", err)
	}
	return s
}

func start(t testing.TB, o Options) (*Server, error) {
	etcdBin, apiBin, err := binaries(o.ToolsDir)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, Dir: t.TempDir()}
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		if t.Failed() {
			s.logTails(t)
		}
		s.Stop()
	})
	if err := s.launch(etcdBin, apiBin); err != nil {
		return nil, err
	}
	return s, nil
}

// launch starts etcd and kube-apiserver for a Server whose opts and Dir are
// set, and waits until kube-apiserver is ready. On error, whatever started
// is left for the caller to Stop.
func (s *Server) launch(etcdBin, apiBin string) error {
	o := s.opts
	if o.NetNS != "" {
		// etcd listens on the namespace's loopback, which a fresh namespace
		// has down.
		if out, err := exec.Command("ip", "-n", o.NetNS, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			return fmt.Errorf("bring up lo in netns %s: %w: %s", o.NetNS, err, strings.TrimSpace(string(out)))
		}
	}
	ports, err := freePorts(o.NetNS, "127.0.0.1", "127.0.0.1", o.BindAddress.String())
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	s.URL = "https://" + net.JoinHostPort(o.BindAddress.String(), strconv.Itoa(apiPort))

	if err := s.writePKI(); err != nil {
		return err
	}

	etcdURL := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(etcdClient))
	s.etcdURL = etcdURL
	s.etcdArgv = etcdArgv(etcdBin, filepath.Join(s.Dir, "etcd"), etcdURL, etcdPeer)
	s.etcd, err = startProcess("etcd", o.NetNS, filepath.Join(s.Dir, "etcd.log"), s.etcdArgv, s.detached)
	if err != nil {
		return err
	}
	if err := s.writePID(s.etcd); err != nil {
		return err
	}
	// kube-apiserver would retry etcd itself, but with back-off; waiting here
	// is faster and names the culprit when etcd cannot start.
	if err := s.waitEtcd(etcdURL); err != nil {
		return err
	}

	s.apiArgv = apiserverArgv(apiBin, s.Dir, etcdURL, o.BindAddress, apiPort)
	if o.FullCluster {
		s.apiArgv = fullClusterArgv(s.apiArgv, s.Dir)
	}
	return s.startAPIServer()
}

// writePKI creates the CA, the serving certificate, the admin identity and
// the service-account key pair kube-apiserver needs.
func (s *Server) writePKI() error {
	var err error
	if s.ca, err = newCA(); err != nil {
		return err
	}
	s.CAData = s.ca.certPEM
	servingCert, servingKey, err := s.ca.servingCert(s.opts.BindAddress)
	if err != nil {
		return err
	}
	adminCert, adminKey, err := s.ca.clientCert("crosswire-test-admin", []string{"system:masters"})
	if err != nil {
		return err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return fmt.Errorf("random admin token: %w", err)
	}
	s.AdminToken = hex.EncodeToString(tok)
	files := map[string][]byte{
		"ca.crt":        s.ca.certPEM,
		"apiserver.crt": servingCert,
		"apiserver.key": servingKey,
		// token,user,uid,"group1,group2"
		"tokens.csv": fmt.Appendf(nil, "%s,crosswire-test-admin-token,crosswire-test-admin-token,\"system:masters\"\n", s.AdminToken),
	}
	if s.opts.FullCluster {
		// The identity kube-apiserver presents to kubelets; they trust the
		// same CA and authorize everything it signed.
		cert, key, err := s.ca.clientCert("kube-apiserver-kubelet-client", []string{"system:masters"})
		if err != nil {
			return err
		}
		files["kubelet-client.crt"], files["kubelet-client.key"] = cert, key
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), b, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := serviceAccountKeys(filepath.Join(s.Dir, "sa.key"), filepath.Join(s.Dir, "sa.pub")); err != nil {
		return err
	}
	s.Admin = s.restConfig(adminCert, adminKey)
	return nil
}

// restConfig builds a client config for a certificate identity. Rate limits
// are raised far above client-go's defaults (5 QPS) because tests burst.
func (s *Server) restConfig(certPEM, keyPEM []byte) *rest.Config {
	c := &rest.Config{
		Host: s.URL,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   s.CAData,
			CertData: certPEM,
			KeyData:  keyPEM,
		},
		QPS:   500,
		Burst: 1000,
	}
	if s.opts.NetNS != "" {
		c.Dial = DialerIn(s.opts.NetNS)
	}
	return c
}

// Client returns a clientset with cluster-admin rights.
func (s *Server) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(s.Admin)
	if err != nil {
		t.Fatalf("admin clientset: %v", err)
	}
	return c
}

// Stop stops kube-apiserver, then etcd, and waits for both to exit. It is
// idempotent and also runs automatically when the test ends.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	if s.apiserver != nil {
		s.apiserver.stop(apiserverGrace)
	}
	if s.etcd != nil {
		s.etcd.stop(etcdGrace)
	}
}

func (s *Server) logTails(t testing.TB) {
	const n = 40
	for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
		p := filepath.Join(s.Dir, name)
		if _, err := os.Stat(p); err == nil {
			t.Logf("last %d lines of %s:\n%s", n, p, tailFile(p, n))
		}
	}
}

// CAFile is the CA certificate that signed every certificate of the
// server: kubelets trust client certificates it signed, and the
// controller-manager hands it to pods as kube-root-ca.crt.
func (s *Server) CAFile() string { return filepath.Join(s.Dir, "ca.crt") }

// ServiceAccountKeyFile is the private key that signs ServiceAccount
// tokens, for the controller-manager's token controller.
func (s *Server) ServiceAccountKeyFile() string { return filepath.Join(s.Dir, "sa.key") }

// Addr returns the address and port kube-apiserver serves on.
func (s *Server) Addr() netip.AddrPort {
	return netip.MustParseAddrPort(strings.TrimPrefix(s.URL, "https://"))
}
