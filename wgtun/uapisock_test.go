package wgtun

import (
	"bufio"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func echoGet(c net.Conn) {
	defer c.Close()
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Write([]byte("got " + line))
}

func TestUAPISocketLifecycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wireguard")
	path := filepath.Join(dir, "cw0.sock")

	// A socket left by a dead process: bound, listener gone, file kept.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	s, err := listenUAPI(dir, "cw0", echoGet, zap.NewNop())
	if err != nil {
		t.Fatalf("listen over stale socket: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v, %v; want socket 0600", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("socket dir holds %d entries, want 1 (private bind dir left?)", len(entries))
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("get=1\n"))
	reply, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if reply != "got get=1\n" {
		t.Fatalf("reply %q", reply)
	}

	// A live socket is not stolen.
	if _, err := listenUAPI(dir, "cw0", echoGet, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second listener on a live socket: %v", err)
	}

	// A client that never finishes must not block close.
	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after close: %v", err)
	}
}

func TestUAPISocketRefusesNonSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cw0.sock")
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenUAPI(dir, "cw0", echoGet, zap.NewNop()); err == nil {
		t.Fatal("regular file at socket path replaced")
	}
	if b, _ := os.ReadFile(path); string(b) != "x" {
		t.Fatal("regular file at socket path modified")
	}
}
