package main

import (
	"io/fs"

	"go.uber.org/zap"
)

// logStateDir reports what wgtun.SecureKeyDir found. The kubelet creates a
// hostPath DirectoryOrCreate 0755 (container runtimes do the same for a
// missing bind-mount source), and no pod setting changes that; so on a new
// node the agent always finds its directory open and empty. Tightening it
// before the first key is written exposes nothing: that is routine, not a
// warning. An existing key in an open directory still is one.
func logStateDir(log *zap.Logger, dir string, before fs.FileMode, changed, keyCreated bool) {
	switch {
	case changed && keyCreated:
		log.Info("new state directory tightened to 0700 before the key was written",
			zap.String("dir", dir), zap.String("was", before.String()))
	case changed:
		log.Warn("state directory was accessible to group or others; tightened to 0700",
			zap.String("dir", dir), zap.String("was", before.String()))
	case before&0o077 != 0:
		log.Warn("state directory is shared (sticky bit); left as is, the key file stays 0600",
			zap.String("dir", dir), zap.String("mode", before.String()))
	}
}
