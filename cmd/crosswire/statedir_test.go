package main

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/crosswire/crosswire/wgtun"
)

// A directory made 0755 by the kubelet on a new node is tightened quietly;
// a key found in an open directory is still a warning. The real
// SecureKeyDir and LoadOrCreateKey run, as in the agent.
func TestStateDirLogLevel(t *testing.T) {
	for name, tc := range map[string]struct {
		existingKey bool
		mode        os.FileMode
		want        zapcore.Level
		wantLogs    int
	}{
		"new node, kubelet made it 0755": {false, 0o755, zap.InfoLevel, 1},
		"key in an open directory":       {true, 0o755, zap.WarnLevel, 1},
		"already private":                {true, 0o700, zap.InfoLevel, 0},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			key := filepath.Join(dir, "private.key")
			if tc.existingKey {
				if _, _, err := wgtun.LoadOrCreateKey(key); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			before, changed, err := wgtun.SecureKeyDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, created, err := wgtun.LoadOrCreateKey(key)
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.DebugLevel)
			logStateDir(zap.New(core), dir, before, changed, created)
			if logs.Len() != tc.wantLogs {
				t.Fatalf("%d log entries %v, want %d", logs.Len(), logs.All(), tc.wantLogs)
			}
			if tc.wantLogs > 0 && logs.All()[0].Level != tc.want {
				t.Errorf("logged %q at %v, want %v", logs.All()[0].Message, logs.All()[0].Level, tc.want)
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("directory mode %v, %v; want 0700", fi.Mode().Perm(), err)
			}
		})
	}
}
