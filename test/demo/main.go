// Command demo runs crosswire on a simulated Kubernetes cluster on this
// machine: a real etcd and kube-apiserver, 3 nodes x 2 pods in network
// namespaces, one crosswire agent per node with the Helm chart's flags. It
// shows each kind of flow with the evidence of whether it was encrypted and
// leaves the cluster running for exploring. Run as root via `make demo` /
// `make demo-down`:
//
//	demo [-bin bin/crosswire] [-prefix cwdemo] [-state /run/crosswire-demo] up|add-node|down
//
// Everything a run creates is named by -prefix (namespaces, tunnel devices
// and their sockets in /var/run/wireguard) or lives under -state and the
// cluster's temporary directory, so `down` finds all of it and a second run
// with other values never collides with the first.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Defaults of -prefix and -state.
const (
	defaultPrefix = "cwdemo"
	defaultState  = "/run/crosswire-demo"
	stateFile     = "state.json"
	podsPerNode   = 2
)

// prefixRE keeps every tunnel device name, <prefix>-n<index>, within the
// kernel's 15 characters for up to 99 nodes.
var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// state is what later commands (add-node, down) need to find a running
// demo; it lives in <state dir>/state.json.
type state struct {
	Prefix string `json:"prefix"`
	Root   string `json:"root"` // the cluster's directory: agent logs, node keys
	Dir    string `json:"dir"`  // the state directory
	Bin    string `json:"bin"`  // absolute path of the crosswire binary
	Nodes  int    `json:"nodes"`
}

func main() {
	bin := flag.String("bin", "bin/crosswire", "crosswire binary")
	prefix := flag.String("prefix", defaultPrefix, "name prefix of the demo's namespaces and tunnel devices (up; down without a state file)")
	dir := flag.String("state", defaultState, "state directory: API server data, kubeconfigs, status sockets, state.json")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: demo [-bin bin/crosswire] [-prefix cwdemo] [-state /run/crosswire-demo] up|add-node|down")
		flag.PrintDefaults()
	}
	flag.Parse()
	if !prefixRE.MatchString(*prefix) {
		fmt.Fprintf(os.Stderr, "demo: -prefix %q: want %s\n", *prefix, prefixRE)
		os.Exit(2)
	}
	stateDir, err := filepath.Abs(*dir)
	if err == nil && os.Geteuid() != 0 {
		err = errors.New("needs root (network namespaces, nftables, /dev/net/tun): run it with sudo")
	}
	if err == nil {
		switch flag.Arg(0) {
		case "up":
			err = up(*bin, *prefix, stateDir)
		case "add-node":
			err = addNode(stateDir)
		case "down":
			err = down(*prefix, stateDir)
		default:
			flag.Usage()
			os.Exit(2)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func loadState(dir string) (*state, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	return &st, nil
}

func (st *state) save() error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(st.Dir, stateFile)
	if err := os.WriteFile(path+".tmp", append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// step runs one stage of setup on one line: what, then "ok (1.2s)" and an
// optional detail, or FAILED.
func step(what string, fn func() (detail string, err error)) error {
	fmt.Printf("  %-44s", what+" ")
	start := time.Now()
	detail, err := fn()
	if err != nil {
		fmt.Println("FAILED")
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Printf("ok %5.1fs", time.Since(start).Seconds())
	if detail != "" {
		fmt.Printf("   %s", detail)
	}
	fmt.Println()
	return nil
}
