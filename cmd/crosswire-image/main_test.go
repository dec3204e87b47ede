package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	c, err := parseFlags([]string{"-version", "0.1.0", "-revision", "abc", "-tarball", "x.tar"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.created != 1700000000 {
		t.Errorf("created %d, want SOURCE_DATE_EPOCH", c.created)
	}
	c, err = parseFlags([]string{"-version", "0.1.0", "-revision", "abc", "-tarball", "x.tar", "-created", "5"}, io.Discard)
	if err != nil || c.created != 5 {
		t.Errorf("-created 5: %d, %v", c.created, err)
	}
	for _, args := range [][]string{
		{"-revision", "abc", "-tarball", "x"},
		{"-version", "v", "-tarball", "x"},
		{"-version", "v", "-revision", "r"},
		{"-version", "v", "-revision", "r", "-tarball", "x", "extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := parseFlags([]string{"-version", "v", "-revision", "r", "-tarball", "x"}, io.Discard); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Errorf("bad SOURCE_DATE_EPOCH: %v", err)
	}
}

func TestParsePlatforms(t *testing.T) {
	ps, err := parsePlatforms("linux/amd64, linux/arm64")
	if err != nil || len(ps) != 2 || ps[1].Architecture != "arm64" {
		t.Errorf("%+v, %v", ps, err)
	}
	for _, bad := range []string{"", "linux", "linux/", "/amd64", "linux/arm/v7"} {
		if _, err := parsePlatforms(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Only an OCI layout is ever removed to make room for a new one.
func TestReplaceLayoutRemovesOnlyLayouts(t *testing.T) {
	dir := t.TempDir()
	layout := filepath.Join(dir, "oci")
	other := filepath.Join(dir, "other")
	for _, d := range []string{layout, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "index.json"), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(layout, "oci-layout"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := replaceLayout(layout); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(layout); !os.IsNotExist(err) {
		t.Errorf("layout still there: %v", err)
	}
	if err := replaceLayout(other); err == nil {
		t.Error("a directory that is not a layout was replaced")
	}
	if _, err := os.Stat(filepath.Join(other, "index.json")); err != nil {
		t.Errorf("non-layout directory touched: %v", err)
	}
	if err := replaceLayout(filepath.Join(dir, "absent")); err != nil {
		t.Errorf("absent directory: %v", err)
	}
}
