package wgtun

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreateKey returns the private key stored at path, creating it if the
// file does not exist. The file holds the base64 key and a newline, like the
// output of `wg genkey`.
//
// created reports whether a new key was generated. A new key is written to a
// temporary file in the same directory, synced, and only then put in place,
// so a crash never leaves a truncated key behind; the parent directory is
// created with mode 0700 if missing.
//
// An existing file is never replaced: a file whose content is not a valid key
// is an error, because silently generating a new key would change the node's
// identity and cut it off from every peer. If an existing key file is
// readable or writable by group or others, its mode is tightened to 0600 and
// no error is returned; callers that want to warn about it must compare the
// mode themselves before the call.
func LoadOrCreateKey(path string) (Key, bool, error) {
	k, err := loadKey(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Key{}, false, err
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, false, fmt.Errorf("create key directory %s: %w", dir, err)
	}
	k, err = GeneratePrivateKey()
	if err != nil {
		return Key{}, false, err
	}
	won, err := writeKeyNoClobber(path, k)
	if err != nil {
		return Key{}, false, err
	}
	if !won {
		// Another process created the key between our read and our write:
		// its key is the node's identity now.
		k, err = loadKey(path)
		return k, false, err
	}
	return k, true, nil
}

func loadKey(path string) (Key, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Key{}, fmt.Errorf("stat key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("key file %s is not a regular file (%s)", path, fi.Mode())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return Key{}, fmt.Errorf("tighten key file %s mode %v to 0600: %w", path, fi.Mode().Perm(), err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read key file: %w", err)
	}
	k, err := ParseKey(strings.TrimSpace(string(b)))
	if err != nil {
		return Key{}, fmt.Errorf("key file %s is corrupt (not replacing it): %w", path, err)
	}
	if k.IsZero() {
		return Key{}, fmt.Errorf("key file %s is corrupt (not replacing it): all-zero key", path)
	}
	return k, nil
}

// writeKeyNoClobber puts the key at path atomically and reports false if a
// file already exists there. It publishes with link(2), which fails on an
// existing target, so two agents racing on first start cannot overwrite each
// other's key; rename(2) is the fallback for file systems without hard links.
func writeKeyNoClobber(path string, k Key) (bool, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return false, fmt.Errorf("create temporary key file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)

	// CreateTemp already uses 0600; Chmod guards against an unusual umask
	// or ACL default.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return false, fmt.Errorf("chmod temporary key file: %w", err)
	}
	if _, err := f.WriteString(k.String() + "\n"); err != nil {
		f.Close()
		return false, fmt.Errorf("write temporary key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, fmt.Errorf("sync temporary key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("close temporary key file: %w", err)
	}

	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		if _, serr := os.Lstat(path); serr == nil {
			return false, nil
		}
		if err := os.Rename(tmp, path); err != nil {
			return false, fmt.Errorf("install key file %s: %w", path, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return false, err
	}
	return true, nil
}

// syncDir makes the new directory entry durable, so a power loss right after
// start-up cannot lose the key the node has already published.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open key directory for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync key directory: %w", err)
	}
	return nil
}

// SecureKeyDir makes sure dir, the directory of the key file, exists and
// is private (0700): it is created so if missing, and tightened to 0700 if
// group or others have any access. It returns the permissions dir had
// before and whether it changed them, so the caller can log it. A
// directory with the sticky bit (a shared one such as /tmp) is not crosswire's
// to change: it is left alone and reported with changed false; the key
// file itself stays 0600 either way.
func SecureKeyDir(dir string) (before fs.FileMode, changed bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, false, fmt.Errorf("create key directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, false, fmt.Errorf("stat key directory: %w", err)
	}
	if !fi.IsDir() {
		return 0, false, fmt.Errorf("key directory %s is not a directory (%s)", dir, fi.Mode())
	}
	before = fi.Mode().Perm()
	if before&0o077 == 0 || fi.Mode()&fs.ModeSticky != 0 {
		return before, false, nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return before, false, fmt.Errorf("tighten key directory %s mode %v to 0700: %w", dir, before, err)
	}
	return before, true, nil
}
