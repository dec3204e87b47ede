package netcluster

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is a long-running command inside a namespace, started by
// Cluster.Start and killed by Cluster.Close at the latest.
type Process struct {
	NS      string
	Argv    []string
	LogPath string // stdout and stderr

	cmd  *exec.Cmd
	done chan struct{} // closed once the process is reaped
	err  error         // exit status; valid after done
}

// Start runs `ip netns exec ns argv...` in its own process group with stdout
// and stderr appended to logPath (a file under Root when empty). ip execs the
// command, so the process is the command itself and signals reach it
// directly.
func (c *Cluster) Start(ns, logPath string, argv ...string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty argv")
	}
	return c.start(ns, logPath, []string{"ip", "netns", "exec", ns}, argv)
}

// StartCommand is Start for a command line that enters its namespaces
// itself, e.g. `nsenter --net=... --mount=... kubelet ...` for a process
// that must share a node's mount namespace (`ip netns exec` gives every
// process a private one). ns only labels the process and its log.
func (c *Cluster) StartCommand(ns, logPath string, argv ...string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty argv")
	}
	return c.start(ns, logPath, nil, argv)
}

// start runs wrapper followed by argv; the Process records argv alone.
func (c *Cluster) start(ns, logPath string, wrapper, argv []string) (*Process, error) {
	cmdline := append(append([]string(nil), wrapper...), argv...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("start %s in %s: cluster closed", argv[0], ns)
	}
	if logPath == "" {
		c.nextLog++
		logPath = filepath.Join(c.Root, fmt.Sprintf("%s-%s-%d.log", ns, filepath.Base(argv[0]), c.nextLog))
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", argv[0], ns, err)
	}
	defer log.Close() // the child holds its own copy

	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own group, so Kill also reaches children the command forks and a
	// Ctrl-C on the test does not hit it before Close can.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", strings.Join(argv, " "), ns, err)
	}
	p := &Process{NS: ns, Argv: argv, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return p, nil
}

// Pid returns the process id, which is also its process group id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process itself (not its group), e.g. SIGTERM for a
// graceful stop.
func (p *Process) Signal(sig os.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("signal %s: %w", p, os.ErrProcessDone)
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", p, err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for status 0). It can be called any number of times.
func (p *Process) Wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: %w", p, p.err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("%s: still running after %v", p, timeout)
	}
}

// Exited reports whether the process has exited (and been reaped).
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill SIGKILLs the whole process group and waits for the process to be
// reaped.
func (p *Process) Kill() {
	// Only while the leader is unreaped is its pid certain to still name
	// our group; children left behind by a leader that already exited are
	// still inside the cluster's namespaces, where Close finds them.
	if !p.Exited() {
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	}
	<-p.done
}

// Log returns what the process wrote so far, for failure messages.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(log %s: %v)", p.LogPath, err)
	}
	return string(b)
}

func (p *Process) String() string {
	return fmt.Sprintf("%q in %s (pid %d)", strings.Join(p.Argv, " "), p.NS, p.Pid())
}

func killPID(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// dead reports whether pid is gone or a zombie: a killed process whose
// parent is not ours may linger unreaped, but it holds nothing any more.
func dead(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name, which may itself
	// contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z' || b[i+2] == 'X'
}
