package kubecluster

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/crosswire/crosswire/test/apiserver"
)

// Versions of the node binaries; test/tools/build.sh builds them into
// directories named after these.
const (
	ContainerdVersion = "v2.2.9"
	RegistryVersion   = "v3.1.2"
	HelmVersion       = "v3.22.0"
)

// Debian's packages (scripts/install-deps.sh).
const (
	runcBinary = "/usr/sbin/runc"
	cniBinDir  = "/usr/lib/cni"
)

// Tools are the paths of every binary a cluster runs.
type Tools struct {
	KubeDir                                      string // kube-apiserver, etcd, kubectl and the node binaries
	Kubelet, ControllerManager, Scheduler, Proxy string
	Kubectl                                      string
	ContainerdDir                                string // containerd, containerd-shim-runc-v2, ctr
	Containerd, Ctr                              string
	Registry                                     string
	Helm                                         string
}

func toolsRoot() string {
	if r := os.Getenv("CROSSWIRE_TOOLS"); r != "" {
		return r
	}
	return "/var/cache/crosswire/tools"
}

// FindTools locates the binaries and says how to build them when one is
// missing.
func FindTools() (Tools, error) {
	kube := apiserver.DefaultToolsDir()
	ctrd := filepath.Join(toolsRoot(), "containerd-"+ContainerdVersion)
	t := Tools{
		KubeDir:           kube,
		Kubelet:           filepath.Join(kube, "kubelet"),
		ControllerManager: filepath.Join(kube, "kube-controller-manager"),
		Scheduler:         filepath.Join(kube, "kube-scheduler"),
		Proxy:             filepath.Join(kube, "kube-proxy"),
		Kubectl:           filepath.Join(kube, "kubectl"),
		ContainerdDir:     ctrd,
		Containerd:        filepath.Join(ctrd, "containerd"),
		Ctr:               filepath.Join(ctrd, "ctr"),
		Registry:          filepath.Join(toolsRoot(), "registry-"+RegistryVersion, "registry"),
		Helm:              filepath.Join(toolsRoot(), "helm-"+HelmVersion, "helm"),
	}
	for _, p := range []string{t.Kubelet, t.ControllerManager, t.Scheduler, t.Proxy, t.Kubectl,
		t.Containerd, filepath.Join(ctrd, "containerd-shim-runc-v2"), t.Registry, t.Helm,
		runcBinary, filepath.Join(cniBinDir, "bridge"), filepath.Join(cniBinDir, "host-local")} {
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			return Tools{}, fmt.Errorf("%s is missing or not executable: run ./scripts/install-deps.sh && make tools", p)
		}
	}
	return t, nil
}
