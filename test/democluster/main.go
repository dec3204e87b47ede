// Command democluster runs crosswire the way a user installs it, on a real
// Kubernetes cluster on this machine (test/kubecluster): etcd,
// kube-apiserver, controller-manager, scheduler and a registry, and three
// nodes each with containerd, a kubelet and kube-proxy (nftables mode), in
// network namespaces. It builds the crosswire image, pushes it to the
// cluster's registry, installs the Helm chart, shows the traffic between
// pods before and after with its evidence, and leaves the cluster running
// for kubectl until `down` (make demo-down) removes it. As root:
//
//	democluster [-prefix cwkube] [-state /run/crosswire-demo-cluster] up|down
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

const (
	defaultPrefix = "cwkube"
	defaultState  = "/run/crosswire-demo-cluster"
	stateFile     = "state.json"
)

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// state is what `down` needs to find a running demo cluster.
type state struct {
	Prefix     string `json:"prefix"`
	Root       string `json:"root"` // the cluster's directory (netcluster root)
	Underlay   string `json:"underlay"`
	Kubectl    string `json:"kubectl"`
	Kubeconfig string `json:"kubeconfig"`
}

func main() {
	prefix := flag.String("prefix", defaultPrefix, "name prefix of the cluster's namespaces and cgroups")
	dir := flag.String("state", defaultState, "state directory: state.json and a kubectl wrapper")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: democluster [-prefix cwkube] [-state /run/crosswire-demo-cluster] up|down")
		flag.PrintDefaults()
	}
	flag.Parse()
	if !prefixRE.MatchString(*prefix) {
		fmt.Fprintf(os.Stderr, "democluster: -prefix %q: want %s\n", *prefix, prefixRE)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "democluster: run as root (network and mount namespaces, cgroups)")
		os.Exit(2)
	}
	var err error
	switch flag.Arg(0) {
	case "up":
		err = up(*prefix, *dir)
	case "down":
		err = down(*prefix, *dir)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "democluster:", err)
		os.Exit(1)
	}
}

func (st *state) save(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, stateFile), append(b, '\n'), 0o600)
}

func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	if !prefixRE.MatchString(st.Prefix) {
		return nil, errors.New("state: bad prefix")
	}
	return &st, nil
}
