// Package unixsock opens unix sockets that are never reachable with a loose
// mode: the agent's sockets answer with secrets (the UAPI socket hands out
// the private key) or with the node's state, for root only.
package unixsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// Listen binds a unix socket at path, mode 0600 from the moment it
// appears there: it binds in a private 0700 directory next to path,
// tightens the socket, then renames it into place, replacing whatever
// stale socket is there (a renamed socket keeps working because connect()
// resolves the inode). path's directory must exist. The listener does not
// remove path when closed: the caller owns the file at its final path.
func Listen(path string) (*net.UnixListener, error) {
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".sock-")
	if err != nil {
		return nil, fmt.Errorf("private socket directory: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("install socket at %s: %w", path, err)
	}
	return l, nil
}
