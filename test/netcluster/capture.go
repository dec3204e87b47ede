package netcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Capture is a tcpdump on the underlay bridge, seeing every frame between
// nodes (tcpdump puts br0 in promiscuous mode, which makes the bridge pass
// forwarded frames up to the capture as well).
type Capture struct {
	Path string // the pcap file, kept under Root until Close
	c    *Cluster
	proc *Process

	once   sync.Once
	counts Counts
	err    error
}

// captureReadyTimeout bounds how long tcpdump may take to open br0.
const captureReadyTimeout = 10 * time.Second

// StartCapture starts tcpdump on the underlay bridge and returns once it is
// really capturing. Immediate mode with per-packet flushing is essential:
// otherwise the last packets still sit in the kernel ring when the capture
// stops, and a leak reads as zero.
func (c *Cluster) StartCapture(t testing.TB) *Capture {
	t.Helper()
	cp, err := c.startCapture()
	if err != nil {
		t.Fatalf("netcluster: %v", err)
	}
	t.Cleanup(func() { _, _ = cp.Stop() })
	return cp
}

func (c *Cluster) startCapture() (*Capture, error) {
	c.mu.Lock()
	c.nextLog++
	base := filepath.Join(c.Root, fmt.Sprintf("capture-%d", c.nextLog))
	c.mu.Unlock()
	cp := &Capture{Path: base + ".pcap", c: c}
	// -Z root: Debian's tcpdump otherwise drops to user tcpdump before
	// opening the output file, which lives in a root-only temp dir.
	p, err := c.Start(c.Underlay, base+".log",
		"tcpdump", "-i", "br0", "-n", "-U", "--immediate-mode", "-Z", "root", "-s", "256", "-w", cp.Path)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	cp.proc = p
	deadline := time.Now().Add(captureReadyTimeout)
	for {
		// tcpdump says "listening on" only after the capture is active.
		if strings.Contains(p.Log(), "listening on") {
			return cp, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("capture: tcpdump not listening on br0 in %s: %s", c.Underlay, strings.TrimSpace(p.Log()))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop ends the capture once tcpdump has caught up (see drain), with SIGINT
// so it flushes and closes the file, and counts what it saw. Later calls
// return the same result.
func (cp *Capture) Stop() (Counts, error) {
	cp.once.Do(func() {
		cp.counts, cp.err = cp.stop()
	})
	return cp.counts, cp.err
}

func (cp *Capture) stop() (Counts, error) {
	if err := cp.drain(); err != nil {
		cp.proc.Kill()
		return Counts{}, fmt.Errorf("capture: %w", err)
	}
	if err := cp.proc.Signal(syscall.SIGINT); err != nil {
		return Counts{}, fmt.Errorf("capture: %w: %s", err, cp.proc.Log())
	}
	if err := cp.proc.Wait(5 * time.Second); err != nil {
		cp.proc.Kill()
		return Counts{}, fmt.Errorf("capture: %w: %s", err, cp.proc.Log())
	}
	f, err := os.Open(cp.Path)
	if err != nil {
		return Counts{}, fmt.Errorf("capture: %w", err)
	}
	defer f.Close()
	counts, err := CountPcap(f, cp.c.PodNets())
	if err != nil {
		return counts, fmt.Errorf("capture %s: %w", cp.Path, err)
	}
	// A packet the capture lost may have been the plaintext one: with any
	// loss the verdict is inconclusive, never clean.
	if err := captureDrops(cp.proc.Log()); err != nil {
		return counts, fmt.Errorf("capture %s inconclusive: %w", cp.Path, err)
	}
	return counts, nil
}

// dropRE matches tcpdump's closing statistics lines, "N packets dropped by
// kernel" and "N packets dropped by interface".
var dropRE = regexp.MustCompile(`(?m)^(\d+) packets? dropped by (kernel|interface)`)

// captureDrops reads tcpdump's statistics (printed when it exits) and
// reports any packet it lost. Without the statistics it cannot tell, which
// is an error too.
func captureDrops(log string) error {
	ms := dropRE.FindAllStringSubmatch(log, -1)
	if len(ms) == 0 {
		return fmt.Errorf("tcpdump printed no drop statistics: %q", strings.TrimSpace(log))
	}
	for _, m := range ms {
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			return fmt.Errorf("tcpdump: %s packets dropped by %s", m[1], m[2])
		}
	}
	return nil
}
