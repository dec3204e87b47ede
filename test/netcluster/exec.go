package netcluster

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
)

// Exec runs `ip netns exec ns args...` and returns its combined output.
func Exec(ns string, args ...string) (string, error) {
	return ExecInput(ns, nil, args...)
}

// ExecInput is Exec with stdin, for tools that read a script (nft -f -).
func ExecInput(ns string, stdin []byte, args ...string) (string, error) {
	return run(stdin, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// run executes argv in the caller's namespace and wraps any failure with the
// command line and its output, which is usually the only useful diagnostic.
func run(stdin []byte, argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ipBatch feeds commands to one `ip -batch` process (in ns, or in the
// caller's namespace if ns is empty): one fork instead of one per command is
// what keeps building a cluster fast.
func ipBatch(ns string, cmds []string) error {
	if len(cmds) == 0 {
		return nil
	}
	argv := []string{"ip"}
	if ns != "" {
		argv = append(argv, "-n", ns)
	}
	argv = append(argv, "-batch", "-")
	_, err := run([]byte(strings.Join(cmds, "\n")+"\n"), argv...)
	return err
}

// Do runs fn on a locked OS thread switched into the named namespace. Sockets
// created by fn stay in that namespace for their whole life, whichever
// goroutine later uses them.
func Do(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", ns, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the wrong namespace: keep it locked so the
		// runtime discards it when this goroutine exits instead of reusing it.
		return fmt.Errorf("restore netns after %s: %w (fn: %v)", ns, err, fnErr)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Ping sends count echo requests from ns to dst and fails unless every one
// is answered: ping's own exit status accepts a single reply, which would hide
// the loss a test is usually looking for.
func Ping(ns string, dst netip.Addr, count int) error {
	return PingSize(ns, dst, count, 56)
}

// PingSize is Ping with size bytes of ICMP payload (ping -s; 56 by
// default), e.g. to send packets whose tunnelled form exceeds the
// underlay's MTU.
func PingSize(ns string, dst netip.Addr, count, size int) error {
	if count < 1 {
		count = 1
	}
	out, err := Exec(ns, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-W", "1", "-i", "0.2", "-s", strconv.Itoa(size), dst.String())
	if err != nil {
		return err
	}
	m := receivedRE.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("ping %s from %s: no summary in output: %s", dst, ns, strings.TrimSpace(out))
	}
	if got, _ := strconv.Atoi(m[1]); got < count {
		return fmt.Errorf("ping %s from %s: %d of %d replies: %s", dst, ns, got, count, strings.TrimSpace(out))
	}
	return nil
}

var receivedRE = regexp.MustCompile(`(\d+) (?:packets )?received`)

// Ping pings dst from any namespace of the cluster (or any namespace at all).
func (c *Cluster) Ping(ns string, dst netip.Addr, count int) error {
	return Ping(ns, dst, count)
}

// Ping pings dst from the pod.
func (p *Pod) Ping(dst netip.Addr, count int) error {
	return Ping(p.NS, dst, count)
}
