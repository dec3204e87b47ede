package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProcSys makes a sysctl tree with the given files (path -> content).
func fakeProcSys(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestSysctlWritesAndReportsValues(t *testing.T) {
	root := fakeProcSys(t, map[string]string{
		"net/ipv4/conf/all/src_valid_mark":     "0\n",
		"net/ipv4/conf/eth0.100/rp_filter":     "2\n",
		"net/ipv4/tcp_rmem":                    "4096 131072 6291456\n",
		"net/ipv4/conf/default/src_valid_mark": "0\n",
	})
	var out bytes.Buffer
	err := writeSysctls(root, []string{
		"net.ipv4.conf.all.src_valid_mark=1",
		"net/ipv4/conf/eth0.100/rp_filter=1",
		"net.ipv4.tcp_rmem=4096 87380 6291456",
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{
		"net/ipv4/conf/all/src_valid_mark":     "1",
		"net/ipv4/conf/eth0.100/rp_filter":     "1",
		"net/ipv4/tcp_rmem":                    "4096 87380 6291456",
		"net/ipv4/conf/default/src_valid_mark": "0\n",
	} {
		got, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", rel, got, err, want)
		}
	}
	want := "net.ipv4.conf.all.src_valid_mark = 1\nnet/ipv4/conf/eth0.100/rp_filter = 1\nnet.ipv4.tcp_rmem = 4096 87380 6291456\n"
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

// Names that could leave /proc/sys, or are not KEY=VALUE, are refused
// before anything is written, including the valid pairs before them.
func TestSysctlRejectsBadNamesBeforeWriting(t *testing.T) {
	for _, bad := range []string{
		"../../etc/passwd=x",
		"net/../../../etc/shadow=x",
		"net.ipv4..conf=1",
		"/net/ipv4/ip_forward=1",
		"net/ipv4/ip_forward/=1",
		"net/./ipv4=1",
		"net.ipv4.conf.all.src_valid_mark",
		"=1",
		"net.ipv4.ip_forward=",
		"net.ipv4.ip_forward=1\n0",
		"net.ipv4.conf.a b.rp_filter=1",
		"net.ipv4.conf.all\x00.x=1",
	} {
		root := fakeProcSys(t, map[string]string{"net/ipv4/ip_forward": "0"})
		err := writeSysctls(root, []string{"net.ipv4.ip_forward=1", bad}, &bytes.Buffer{})
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if got, _ := os.ReadFile(filepath.Join(root, "net/ipv4/ip_forward")); string(got) != "0" {
			t.Errorf("%q: the valid pair before it was written (%q): want nothing written", bad, got)
		}
	}
}

func TestSysctlErrorsSayWhy(t *testing.T) {
	root := fakeProcSys(t, map[string]string{"net/ipv4/ip_forward": "0"})
	err := writeSysctls(root, []string{"net.ipv4.ip_forwad=1"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no such kernel parameter") || !strings.Contains(err.Error(), "net.ipv4.ip_forwad") {
		t.Errorf("misspelt name: %v, want it named as unknown", err)
	}
	if _, statErr := os.Stat(filepath.Join(root, "net/ipv4/ip_forwad")); statErr == nil {
		t.Error("a misspelt name created a file")
	}

	if os.Geteuid() == 0 {
		t.Log("root ignores file modes; the read-only case is covered by a read-only bind mount only in containers")
		return
	}
	if err := os.Chmod(filepath.Join(root, "net/ipv4/ip_forward"), 0o444); err != nil {
		t.Fatal(err)
	}
	err = writeSysctls(root, []string{"net.ipv4.ip_forward=1"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "run this privileged") {
		t.Errorf("read-only: %v, want the privileged hint", err)
	}
}

// The command writes to the real /proc/sys: an unknown name fails there
// too, with the path it looked for.
func TestSysctlCommandUsesProcSys(t *testing.T) {
	cmd := newRootCommand()
	cmd.SetArgs([]string{"sysctl", "net.crosswire_no_such_parameter=1"})
	cmd.SetOut(&bytes.Buffer{})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "/proc/sys/net/crosswire_no_such_parameter") {
		t.Errorf("err = %v, want the /proc/sys path named", err)
	}
}
