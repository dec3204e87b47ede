package wgtun

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKeyCreatesThenReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "crosswire")
	path := filepath.Join(dir, "private.key")

	k1, created, err := LoadOrCreateKey(path)
	if err != nil || !created || k1.IsZero() {
		t.Fatalf("first call = %v, created=%v, %v", k1, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("key dir mode %v, want 0700", di.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if string(b) != k1.String()+"\n" {
		t.Errorf("key file content %q, want base64 key and newline", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key (temp file left behind?)", len(entries))
	}

	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || k2 != k1 {
		t.Fatalf("second call = %v, created=%v, %v; want same key, created=false", k2, created, err)
	}
}

func TestLoadOrCreateKeyReadsWgGenkeyFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	want, _ := GeneratePrivateKey()
	if err := os.WriteFile(path, []byte(want.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, created, err := LoadOrCreateKey(path)
	if err != nil || created || got != want {
		t.Fatalf("LoadOrCreateKey = %v, %v, %v; want %v, false, nil", got, created, err, want)
	}
}

func TestLoadOrCreateKeyTightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	want, _ := GeneratePrivateKey()
	if err := os.WriteFile(path, []byte(want.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	got, created, err := LoadOrCreateKey(path)
	if err != nil || created || got != want {
		t.Fatalf("LoadOrCreateKey = %v, %v, %v", got, created, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after load %v, want 0600", fi.Mode().Perm())
	}
}

func TestLoadOrCreateKeyRejectsCorruptFile(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":   "not a key\n",
		"truncated": "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBm\n",
		"empty":     "",
		"zero":      strings.Repeat("A", 43) + "=\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateKey(path)
			if err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("error = %v, want a corrupt-key error", err)
			}
			b, _ := os.ReadFile(path)
			if string(b) != content {
				t.Fatalf("corrupt file rewritten to %q", b)
			}
		})
	}
}

func TestLoadOrCreateKeyRejectsDirectory(t *testing.T) {
	path := t.TempDir()
	if _, _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("directory accepted as key file")
	}
}

func TestSecureKeyDir(t *testing.T) {
	root := t.TempDir()

	missing := filepath.Join(root, "new", "state")
	if _, changed, err := SecureKeyDir(missing); err != nil || changed {
		t.Fatalf("missing dir: changed %v, %v", changed, err)
	}
	if fi, err := os.Stat(missing); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("created dir mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}

	loose := filepath.Join(root, "loose")
	if err := os.Mkdir(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	before, changed, err := SecureKeyDir(loose)
	if err != nil || !changed || before != 0o755 {
		t.Fatalf("loose dir: before %v changed %v, %v; want 0755 true", before, changed, err)
	}
	if fi, _ := os.Stat(loose); fi.Mode().Perm() != 0o700 {
		t.Fatalf("loose dir now %v, want 0700", fi.Mode().Perm())
	}
	if _, changed, err := SecureKeyDir(loose); err != nil || changed {
		t.Fatalf("second call: changed %v, %v", changed, err)
	}

	shared := filepath.Join(root, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if _, changed, err := SecureKeyDir(shared); err != nil || changed {
		t.Fatalf("sticky dir: changed %v, %v; want left alone", changed, err)
	}

	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := SecureKeyDir(file); err == nil {
		t.Fatal("a file was accepted as key directory")
	}
}
