package apiserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// process is one child (etcd or kube-apiserver) in its own process group,
// with stdout and stderr appended to a log file.
type process struct {
	name    string
	argv    []string // as run, including any `ip netns exec` prefix
	logPath string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been reaped
	err  error         // exit status, valid after done
}

// startProcess runs argv (inside ns when set). The child gets its own
// process group, so stopping it also stops anything it forked, and
// SIGKILL as its parent-death signal, so a test binary that dies (timeout
// panic, SIGKILL) does not leak servers holding ports.
//
// Pdeathsig fires when the *thread* that forked the child exits, not the
// process, so the fork happens on a goroutine that keeps its OS thread
// locked until the child has exited.
//
// A detached child (Launch with Detached) instead starts its own session,
// with no parent-death signal: it outlives this process, has no
// controlling terminal whose hangup could reach it, and is stopped by
// StopDir through its pid file.
func startProcess(name, ns, logPath string, argv []string, detached bool) (*process, error) {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	// A marker separates runs when kube-apiserver is restarted into the same log.
	fmt.Fprintf(logf, "==== %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))

	p := &process{name: name, argv: argv, logPath: logPath, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout = logf
	p.cmd.Stderr = logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if detached {
		// A session leader leads its process group too (Setpgid would fail).
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}

	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer logf.Close()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	return p, nil
}

// exited reports whether the process has ended, with its exit status.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// signal sends sig to the whole process group.
func (p *process) signal(sig syscall.Signal) error {
	if done, _ := p.exited(); done {
		return nil
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s %v: %w", p.name, sig, err)
	}
	return nil
}

// stop asks the process group to terminate, escalates to SIGKILL after
// grace (at once if grace is 0), and waits until the child is reaped. Safe
// to call repeatedly.
func (p *process) stop(grace time.Duration) {
	if done, _ := p.exited(); done {
		return
	}
	if grace == 0 {
		_ = p.signal(syscall.SIGKILL)
		<-p.done
		return
	}
	_ = p.signal(syscall.SIGTERM)
	_ = p.signal(syscall.SIGCONT) // a paused process cannot act on SIGTERM
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// tail returns the last n lines of the log, for failure messages.
func (p *process) tail(n int) string {
	return tailFile(p.logPath, n)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
