package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// runAsPauseEnv makes the test binary act as `crosswire pause` (see
// TestMain), so the test can signal a real process.
const runAsPauseEnv = "CROSSWIRE_TEST_RUN_PAUSE"

func TestMain(m *testing.M) {
	if os.Getenv(runAsPauseEnv) == "1" {
		cmd := newRootCommand()
		cmd.SetArgs([]string{"pause"})
		if err := cmd.Execute(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startPause starts `crosswire pause` in a child process; as root it runs
// as uid/gid 65535 without capabilities, as the chart runs it.
func startPause(t *testing.T) *exec.Cmd {
	t.Helper()
	bin := os.Args[0]
	cmd := exec.Command(bin, "-test.run=^$")
	if os.Geteuid() == 0 {
		bin = copyWorldExecutable(t, bin)
		cmd = exec.Command(bin, "-test.run=^$")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65535, Gid: 65535}}
	}
	cmd.Env = append(os.Environ(), runAsPauseEnv+"=1")
	cmd.Stdout = os.Stderr
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// Signals sent before the handler is installed would kill the process
	// (the Go runtime's default), which is not what is tested here.
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			if !found && sc.Text() == pauseReadyLine {
				found = true
				ready <- true
			}
		}
		if !found {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("pause exited without saying it waits for a signal")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("pause did not start within 60 s")
	}
	return cmd
}

// copyWorldExecutable copies the test binary where uid 65535 can run it
// (the go tool's build directory is private to root).
func copyWorldExecutable(t *testing.T, src string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "crosswire-pause-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, "crosswire.test")
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestPauseBlocksUntilSignalThenExitsZero(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := startPause(t)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				t.Fatalf("pause exited before any signal: %v", err)
			case <-time.After(500 * time.Millisecond):
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("pause after %v: %v, want exit 0", sig, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("pause still running 10 s after %v", sig)
			}
		})
	}
}

func TestPauseReturnsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pause(ctx, io.Discard) }()
	select {
	case err := <-done:
		t.Fatalf("pause returned before cancel: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pause did not return after cancel")
	}
}
