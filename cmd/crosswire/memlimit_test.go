package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1)) // restore
	t.Setenv("GOMEMLIMIT", "")
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "memory.max")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	limit := float64(256 << 20)
	got, err := setMemoryLimit(write("268435456\n"))
	if want := int64(limit * memoryLimitShare); err != nil || got != want || debug.SetMemoryLimit(-1) != want {
		t.Fatalf("256 MiB limit: set %d (%v), runtime %d; want %d", got, err, debug.SetMemoryLimit(-1), want)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	for name, path := range map[string]string{"no limit": write("max\n"), "no cgroup v2": filepath.Join(dir, "absent")} {
		if got, err := setMemoryLimit(path); err != nil || got != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
			t.Errorf("%s: set %d (%v)", name, got, err)
		}
	}
	if _, err := setMemoryLimit(write("lots")); err == nil {
		t.Error("a malformed memory.max was accepted")
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	if got, err := setMemoryLimit(write("268435456")); err != nil || got != 0 {
		t.Errorf("GOMEMLIMIT set by the operator was overridden: %d (%v)", got, err)
	}
}
