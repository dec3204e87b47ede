package kubecluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// nodeBinds are the host paths each node sees as its own directories: the
// chart's hostPaths (/var/lib/crosswire, /var/run/crosswire,
// /var/run/wireguard), and the kubelet's, containerd's and the CNI's state
// and logs. Binding whole trees (not one mount point per path) means no
// mount point is ever created in the host's filesystem.
var nodeBinds = []string{"/run", "/var/lib", "/var/log"}

// mountRoot makes dir a private mount point (a bind mount onto itself):
// persistent mount namespaces can only be pinned to files on a private
// mount.
func mountRoot(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mount ns dir: %w", err)
	}
	if err := run("mount", "--bind", dir, dir); err != nil {
		return err
	}
	return run("mount", "--make-private", dir)
}

// newMountNS creates a mount namespace pinned at file (inside a mountRoot)
// in which each of nodeBinds is bound to the same path under dir.
func newMountNS(file, dir string) error {
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		return fmt.Errorf("mount ns file: %w", err)
	}
	if err := run("unshare", "--mount="+file, "--propagation", "private", "true"); err != nil {
		return err
	}
	for _, p := range nodeBinds {
		src := filepath.Join(dir, strings.TrimPrefix(p, "/"))
		if err := os.MkdirAll(src, 0o755); err != nil {
			return fmt.Errorf("node dir: %w", err)
		}
		if err := run("nsenter", "--mount="+file, "--", "mount", "--bind", src, p); err != nil {
			return err
		}
	}
	return nil
}

// unmount detaches path (a pinned namespace or the mount root); gone is
// fine.
func unmount(path string) error {
	if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	return nil
}

// run runs a command in the test's own namespaces.
func run(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// output runs a command and returns its combined output.
func output(argv ...string) (string, error) {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
