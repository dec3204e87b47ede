package apiserver

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
)

// Versions of the binaries the package expects; test/tools/go.mod and
// test/tools/build.sh pin the same ones.
const (
	KubeVersion = "v1.37.2"
	EtcdVersion = "v3.7.3"
)

// Options configures Start. The zero value runs both processes in the
// caller's network namespace with kube-apiserver on 127.0.0.1.
type Options struct {
	// BindAddress is the address kube-apiserver serves on. It must be
	// reachable by the clients under test, e.g. an underlay address of the
	// namespace given in NetNS. Default 127.0.0.1.
	BindAddress netip.Addr
	// ToolsDir holds the kube-apiserver and etcd binaries. Default
	// DefaultToolsDir().
	ToolsDir string
	// NetNS, if set, names a network namespace (as for `ip netns exec`) to
	// run etcd and kube-apiserver in, so node namespaces on the same bridge
	// can reach the API server. Its loopback is brought up, because etcd
	// listens there.
	NetNS string
	// FullCluster prepares the server for a controller-manager and real
	// kubelets (test/kubecluster): ServiceAccount admission stays on (the
	// controller-manager creates the default ServiceAccounts), the
	// kubernetes Service's endpoints are reconciled to BindAddress (pods
	// reach the API through kube-proxy), and kube-apiserver dials kubelets
	// by InternalIP with a client certificate (logs, exec).
	FullCluster bool
}

// DefaultToolsDir is where test/tools/build.sh puts the binaries:
// $CROSSWIRE_TOOLS (default /var/cache/crosswire/tools) plus a directory
// named after the versions, so a version bump never runs stale binaries.
func DefaultToolsDir() string {
	root := os.Getenv("CROSSWIRE_TOOLS")
	if root == "" {
		root = "/var/cache/crosswire/tools"
	}
	return filepath.Join(root, "kube-"+KubeVersion+"-etcd-"+EtcdVersion)
}

func (o Options) withDefaults() Options {
	if !o.BindAddress.IsValid() {
		o.BindAddress = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if o.ToolsDir == "" {
		o.ToolsDir = DefaultToolsDir()
	}
	return o
}

// binaries returns the paths of etcd and kube-apiserver in dir, or an error
// that tells the developer exactly how to build them.
func binaries(dir string) (etcd, apiserver string, err error) {
	etcd = filepath.Join(dir, "etcd")
	apiserver = filepath.Join(dir, "kube-apiserver")
	for _, p := range []string{etcd, apiserver} {
		if st, statErr := os.Stat(p); statErr != nil || st.Mode()&0o111 == 0 {
			return "", "", fmt.Errorf("%s is missing or not executable; build the test binaries once per machine "+
				"(~10 min the first time on 2 cores) with:\n\t%s", p, buildCommand(dir))
		}
	}
	return etcd, apiserver, nil
}

// buildCommand is the shell command that fills dir: build.sh, by absolute
// path when the source tree is available (it is, unless the test binary was
// built with -trimpath), with CROSSWIRE_TOOLS set when dir is not under the
// default root.
func buildCommand(dir string) string {
	script := "test/tools/build.sh"
	if _, file, _, ok := runtime.Caller(0); ok {
		p := filepath.Join(filepath.Dir(file), "..", "tools", "build.sh")
		if _, err := os.Stat(p); err == nil {
			script = p
		}
	}
	root, base := filepath.Split(filepath.Clean(dir))
	root = filepath.Clean(root)
	switch {
	case base != "kube-"+KubeVersion+"-etcd-"+EtcdVersion:
		return fmt.Sprintf("CROSSWIRE_TOOLS=$(mktemp -d) %s and copy the binaries into %s", script, dir)
	case root != "/var/cache/crosswire/tools":
		return fmt.Sprintf("CROSSWIRE_TOOLS=%s %s", root, script)
	default:
		return script
	}
}
