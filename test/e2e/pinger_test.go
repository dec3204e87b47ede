package e2e

import (
	"bufio"
	"bytes"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pinger pings continuously (every 20 ms) from a namespace for as long as
// a test runs, recording when each reply arrived, so a test can measure
// the longest stretch without replies around an event.
type pinger struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done bool
	// replies, after stop: arrival times, in order.
	replies []time.Time
	sent    int
}

const pingInterval = 20 * time.Millisecond

func startPinger(t testing.TB, name, ns string, dst netip.Addr) *pinger {
	t.Helper()
	p := &pinger{t: t, name: name}
	// ip netns exec execs ping in place, so the signal reaches ping itself.
	p.cmd = exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-D", "-i", "0.02", "-W", "1", dst.String())
	p.cmd.Stdout = lockedWriter{p}
	p.cmd.Stderr = lockedWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start pinger %s: %v", name, err)
	}
	t.Cleanup(func() { p.stop() })
	return p
}

type lockedWriter struct{ p *pinger }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

var (
	replyRE = regexp.MustCompile(`^\[(\d+)\.(\d+)\] \d+ bytes from .*icmp_seq=(\d+)`)
	sentRE  = regexp.MustCompile(`(\d+) packets transmitted`)
)

// parse reads the replies printed so far.
func (p *pinger) parse() (replies []time.Time, sent int) {
	p.mu.Lock()
	text := p.out.String()
	p.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader([]byte(text)))
	for sc.Scan() {
		line := sc.Text()
		if m := replyRE.FindStringSubmatch(line); m != nil {
			sec, _ := strconv.ParseInt(m[1], 10, 64)
			frac := m[2]
			for len(frac) < 9 {
				frac += "0"
			}
			nsec, _ := strconv.ParseInt(frac[:9], 10, 64)
			replies = append(replies, time.Unix(sec, nsec))
		} else if m := sentRE.FindStringSubmatch(line); m != nil {
			sent, _ = strconv.Atoi(m[1])
		}
	}
	return replies, sent
}

// repliedSince reports whether a reply arrived after t0.
func (p *pinger) repliedSince(t0 time.Time) bool {
	r, _ := p.parse()
	return len(r) > 0 && r[len(r)-1].After(t0)
}

func (p *pinger) stop() {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	p.done = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	p.replies, p.sent = p.parse()
}

// longestGap is the longest time between consecutive replies (or between
// from and the first reply after it) that overlaps [from, to].
func longestGap(replies []time.Time, from, to time.Time) time.Duration {
	var longest time.Duration
	prev := time.Time{}
	for _, r := range replies {
		if r.Before(from) {
			prev = r
			continue
		}
		start := prev
		if start.IsZero() {
			start = from
		}
		if start.Before(to) {
			longest = max(longest, r.Sub(start))
		}
		prev = r
		if r.After(to) {
			break
		}
	}
	if !prev.IsZero() && prev.Before(to) {
		longest = max(longest, to.Sub(prev))
	}
	return longest
}
