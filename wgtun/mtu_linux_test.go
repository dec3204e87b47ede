package wgtun

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestSetMTU: the link changes, and wireguard-go hears of it through the
// event nsTUN forwards (it logs "MTU updated: N" when it re-reads the MTU).
func TestSetMTU(t *testing.T) {
	requirePrivileged(t)
	n := newTestNet(t)
	core, logs := observer.New(zapcore.DebugLevel)
	key, _ := GeneratePrivateKey()
	name := "cw" + randHex(t, 3)
	d := openIn(t, n.a, Config{Name: name, PrivateKey: key, SocketDir: t.TempDir(), Logger: zap.New(core)})

	if got, err := d.MTU(); err != nil || got != 1420 {
		t.Fatalf("MTU after Open = %d, %v; want 1420", got, err)
	}
	if err := d.SetMTU(1340); err != nil {
		t.Fatal(err)
	}
	if got, err := d.MTU(); err != nil || got != 1340 {
		t.Fatalf("MTU after SetMTU(1340) = %d, %v", got, err)
	}
	if out := run(t, "ip", "-n", n.a, "link", "show", name); !strings.Contains(out, "mtu 1340") {
		t.Fatalf("link: %s", out)
	}
	waitFor(t, "wireguard-go to pick up MTU 1340", func() bool {
		return logs.FilterMessageSnippet("MTU updated: 1340").Len() > 0
	})
	for _, bad := range []int{0, 575, 65536} {
		if err := d.SetMTU(bad); err == nil {
			t.Errorf("SetMTU(%d) accepted", bad)
		}
	}
	d.Close()
	if err := d.SetMTU(1400); err == nil {
		t.Error("SetMTU on a closed device accepted")
	}
}
