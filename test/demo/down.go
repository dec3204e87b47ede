package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

// down removes everything up and add-node created: kube-apiserver and etcd
// (pid files), the agents and every namespace named <prefix>-*, the tunnel
// sockets <prefix>-n*.sock in /var/run/wireguard, the cluster's directory
// and the state directory. Idempotent; it says what it removed.
func down(prefix, dir string) error {
	st, err := loadState(dir)
	switch {
	case err == nil:
		prefix = st.Prefix
	case errors.Is(err, os.ErrNotExist):
		st = &state{Prefix: prefix, Dir: dir}
	default:
		fmt.Fprintf(os.Stderr, "demo down: %v; removing by prefix %s\n", err, prefix)
		st = &state{Prefix: prefix, Dir: dir}
	}
	var did []string
	var errs []error
	if dir == defaultState && prefix == defaultPrefix {
		did, errs = downLegacy()
	}
	pids := pidFiles(st.apiDir())
	stopped, err := apiserver.StopDir(st.apiDir())
	errs = append(errs, err)
	if len(stopped) > 0 {
		did = append(did, "stopped "+strings.Join(stopped, " and "))
	}
	removed, err := netcluster.Remove(prefix, st.Root)
	errs = append(errs, err)
	if n := len(removed.Namespaces); n > 0 {
		did = append(did, fmt.Sprintf("deleted %d namespaces %s-* and the %d processes in them (agents)", n, prefix, len(removed.Pids)))
	}
	waitReaped(append(pids, removed.Pids...))
	if removed.Root {
		did = append(did, "removed "+st.Root+" (agent logs, node keys)")
	}
	sockets, _ := filepath.Glob(filepath.Join(cwcluster.HostSocketDir, prefix+"-n*.sock"))
	for _, s := range sockets {
		errs = append(errs, os.Remove(s))
	}
	if len(sockets) > 0 {
		did = append(did, fmt.Sprintf("removed %d sockets %s/%s-n*.sock", len(sockets), cwcluster.HostSocketDir, prefix))
	}
	if _, err := os.Stat(dir); err == nil {
		errs = append(errs, os.RemoveAll(dir))
		did = append(did, "removed "+dir+" (API server data, kubeconfigs, status sockets)")
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(did) == 0 {
		fmt.Printf("demo down: nothing to remove (no %s, no namespaces %s-*)\n", dir, prefix)
		return nil
	}
	for _, d := range did {
		fmt.Println("demo down: " + d)
	}
	fmt.Println("demo down: done, nothing of the demo is left")
	return nil
}

// downLegacy removes what the previous demo (Nodes from a file, before the
// API server) kept outside the namespaces: its state file, its cluster's
// directory and its sockets cw-node<i>.sock. Its namespaces are cwdemo-*
// too, so down's main pass removes them.
func downLegacy() (did []string, errs []error) {
	const legacyState = "/run/crosswire-demo.json"
	data, err := os.ReadFile(legacyState)
	if err != nil {
		return nil, nil
	}
	var old struct{ Root string }
	if json.Unmarshal(data, &old) == nil && strings.HasPrefix(old.Root, os.TempDir()) {
		errs = append(errs, os.RemoveAll(old.Root))
	}
	sockets, _ := filepath.Glob(filepath.Join(cwcluster.HostSocketDir, "cw-node[0-9].sock"))
	for _, s := range sockets {
		errs = append(errs, os.Remove(s))
	}
	errs = append(errs, os.Remove(legacyState))
	return []string{"removed the earlier demo's " + legacyState + ", its directory and sockets"}, errs
}

// pidFiles reads the API server's pid files before StopDir removes them.
func pidFiles(dir string) []int {
	var pids []int
	for _, name := range []string{"etcd.pid", "kube-apiserver.pid"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitReaped waits (up to 5 s) until the killed processes are gone from the
// process table, not just dead: their parent, the `up` that started them,
// has exited, so init reaps them, on some machines only after a while, and
// until then they show in ps and pgrep as <defunct>.
func waitReaped(pids []int) {
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
