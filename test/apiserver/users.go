package apiserver

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// AddUser returns a client config that authenticates as user in groups, via
// a client certificate signed by the server's CA. No restart is needed: the
// x509 authenticator accepts any certificate from the CA. RBAC grants the
// new user nothing (beyond discovery) until the test binds it a role; a user
// "system:node:<name>" in group "system:nodes" is instead authorized by the
// Node authorizer and NodeRestriction, as a kubelet would be.
func (s *Server) AddUser(t testing.TB, user string, groups ...string) *rest.Config {
	t.Helper()
	cert, key, err := s.ca.clientCert(user, groups)
	if err != nil {
		t.Fatalf("AddUser %q: %v", user, err)
	}
	return s.restConfig(cert, key)
}

// Kubeconfig writes a kubeconfig file at path for cfg (as returned by
// AddUser, or Admin), with every credential embedded, for an agent process
// started with --kubeconfig. cfg.Dial cannot be written down: a process
// using the file must run where the server URL is reachable.
func (s *Server) Kubeconfig(t testing.TB, cfg *rest.Config, path string) {
	t.Helper()
	if err := writeKubeconfig(cfg, path); err != nil {
		t.Fatalf("Kubeconfig: %v", err)
	}
}

func writeKubeconfig(cfg *rest.Config, path string) error {
	auth := &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
	}
	if len(auth.ClientCertificateData) == 0 && auth.Token == "" {
		return fmt.Errorf("config for %s has neither client certificate data nor a bearer token", cfg.Host)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["crosswire-test"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos["user"] = auth
	kc.Contexts["crosswire-test"] = &clientcmdapi.Context{Cluster: "crosswire-test", AuthInfo: "user"}
	kc.CurrentContext = "crosswire-test"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create directory for %s: %w", path, err)
	}
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}
