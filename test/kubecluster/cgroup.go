package kubecluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const cgroupFS = "/sys/fs/cgroup"

// cgroupHierarchies lists the mounted hierarchies (cgroup v1 controllers,
// and the unified v2 one on hybrid hosts). A node's kubelet puts its pods
// under its own cgroupRoot in each.
func cgroupHierarchies() ([]string, error) {
	entries, err := os.ReadDir(cgroupFS)
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	var hs []string
	for _, e := range entries {
		if e.IsDir() {
			hs = append(hs, filepath.Join(cgroupFS, e.Name()))
		}
	}
	return hs, nil
}

// createCgroupRoot makes root in every hierarchy; in cpuset it copies the
// parent's cpus and mems, without which no task can join it.
func createCgroupRoot(root string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		dir := filepath.Join(h, root)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return fmt.Errorf("cgroup %s: %w", f, err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return fmt.Errorf("cgroup %s/%s: %w", dir, f, err)
				}
			}
		}
	}
	return nil
}

// cgroupPids returns every process in root or below it, in any hierarchy.
func cgroupPids(root string) ([]int, error) {
	hs, err := cgroupHierarchies()
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, h := range hs {
		top := filepath.Join(h, root)
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil // removed under us
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", top, err)
		}
	}
	return pids, nil
}

// killCgroup SIGKILLs everything in root until it is empty.
func killCgroup(root string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := cgroupPids(root)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", root, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeCgroupRoot removes root and everything below it, deepest first, in
// every hierarchy. The cgroups must be empty (killCgroup).
func removeCgroupRoot(root string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := rmdirRetry(dirs[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// rmdirRetry removes an empty cgroup; the kernel may report it busy for a
// moment after its last task died.
func rmdirRetry(dir string) error {
	var err error
	for range 50 {
		err = syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}

// podPid returns a process of the pod with the given UID on the node whose
// cgroup root is root: the kubelet names pod cgroups pod<UID>.
func podPid(root, uid string) (int, error) {
	want := "pod" + uid
	h := filepath.Join(cgroupFS, "pids")
	var pid int
	err := filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || pid != 0 {
			return nil
		}
		if !strings.Contains(p, "/"+want+"/") {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			pid, _ = strconv.Atoi(f[0])
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if pid == 0 {
		return 0, fmt.Errorf("no process of pod %s under cgroup %s", uid, root)
	}
	return pid, nil
}
