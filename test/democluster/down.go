package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/crosswire/crosswire/test/kubecluster"
)

// down removes everything up created: every container, node process and
// control plane process, the namespaces, mount namespaces, cgroups, the
// cluster's directory and the state directory. Idempotent.
func down(prefix, dir string) error {
	st, err := loadState(dir)
	switch {
	case err == nil:
		prefix = st.Prefix
	case errors.Is(err, os.ErrNotExist):
		st = &state{Prefix: prefix}
	default:
		fmt.Fprintf(os.Stderr, "democluster down: %v; removing by prefix %s\n", err, prefix)
		st = &state{Prefix: prefix}
	}
	left, _ := filepath.Glob("/var/run/netns/" + prefix + "-*")
	_, stateErr := os.Stat(dir)
	if len(left) == 0 && st.Root == "" && stateErr != nil {
		fmt.Printf("democluster down: nothing to remove (no %s, no namespaces %s-*)\n", dir, prefix)
		return nil
	}
	if err := kubecluster.Teardown(prefix, st.Root); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	fmt.Printf("democluster down: removed the cluster %s (%d namespaces, its processes, mounts and cgroups), %s and %s\n",
		prefix, len(left), st.Root, dir)
	return nil
}
