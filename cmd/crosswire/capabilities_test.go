package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRequireNetAdmin(t *testing.T) {
	status := func(capEff string) string {
		p := filepath.Join(t.TempDir(), "status")
		body := "Name:\tcrosswire\nCapInh:\t0000000000000000\nCapPrm:\t0000000000001000\nCapEff:\t" + capEff + "\nCapBnd:\t00000000a80425fb\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, capEff := range []string{"0000000000001000", "000001ffffffffff"} {
		if err := requireNetAdmin(status(capEff)); err != nil {
			t.Errorf("CapEff %s has NET_ADMIN: %v", capEff, err)
		}
	}
	for _, capEff := range []string{"0000000000000000", "00000000a80425fb"} {
		err := requireNetAdmin(status(capEff))
		if err == nil || !strings.Contains(err.Error(), "NET_ADMIN") || !strings.Contains(err.Error(), "securityContext.capabilities.add") {
			t.Errorf("CapEff %s lacks NET_ADMIN: error %v, want one naming NET_ADMIN and the setting", capEff, err)
		}
	}
	if err := requireNetAdmin(status("zz")); err == nil {
		t.Error("a malformed CapEff must be an error")
	}
	if err := requireNetAdmin(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing status file must be an error")
	}
	// This process: as root in CI it has NET_ADMIN.
	if os.Geteuid() == 0 {
		if err := requireNetAdmin("/proc/self/status"); err != nil {
			t.Errorf("root test process: %v", err)
		}
	}
}
