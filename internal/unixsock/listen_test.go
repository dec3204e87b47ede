package unixsock

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	if err := os.WriteFile(path, nil, 0o644); err != nil { // a stale file is replaced
		t.Fatal(err)
	}
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want socket 0600", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want the socket only", len(entries))
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	_ = l.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("socket removed on close: %v; the caller owns it", err)
	}
}

func TestListenMissingDir(t *testing.T) {
	if _, err := Listen(filepath.Join(t.TempDir(), "no", "s.sock")); err == nil {
		t.Fatal("no error for a missing directory")
	}
}
