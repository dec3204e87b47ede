package main

import (
	"errors"

	"golang.org/x/sys/unix"
)

// isReadOnlyFS reports EROFS, which fs.ErrPermission does not cover: an
// unprivileged container's /proc/sys is a read-only bind mount.
func isReadOnlyFS(err error) bool { return errors.Is(err, unix.EROFS) }
