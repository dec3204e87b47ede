package netcluster

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

// Pinger pings continuously (every 20 ms) from a namespace for as long as
// a test runs, recording when each reply arrived, so a test can measure
// the longest stretch without replies around an event.
type Pinger struct {
	Name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done bool
	// Replies, after Stop: arrival times, in order, and the sequence
	// number each answered (Seqs[i] for Replies[i]); Sent: echo requests.
	Replies []time.Time
	Seqs    []int
	Sent    int
}

// PingInterval is how often a Pinger sends.
const PingInterval = 20 * time.Millisecond

// StartPinger starts pinging dst from ns; it stops when the test ends at
// the latest.
func StartPinger(t testing.TB, name, ns string, dst netip.Addr) *Pinger {
	t.Helper()
	p := &Pinger{Name: name}
	// ip netns exec execs ping in place, so the signal reaches ping itself.
	p.cmd = exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-D", "-i", strconv.FormatFloat(PingInterval.Seconds(), 'f', -1, 64), "-W", "1", dst.String())
	p.cmd.Stdout = lockedWriter{p}
	p.cmd.Stderr = lockedWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start pinger %s: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return p
}

type lockedWriter struct{ p *Pinger }

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
func (p *Pinger) parse() (replies []time.Time, seqs []int, sent int) {
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
			seq, _ := strconv.Atoi(m[3])
			seqs = append(seqs, seq)
		} else if m := sentRE.FindStringSubmatch(line); m != nil {
			sent, _ = strconv.Atoi(m[1])
		}
	}
	return replies, seqs, sent
}

// RepliedSince reports whether a reply arrived after t0.
func (p *Pinger) RepliedSince(t0 time.Time) bool {
	r, _, _ := p.parse()
	return len(r) > 0 && r[len(r)-1].After(t0)
}

// Stop ends the pings and fills Replies and Sent.
func (p *Pinger) Stop() {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	p.done = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	_ = p.cmd.Wait()
	p.Replies, p.Seqs, p.Sent = p.parse()
}

// Loss is what a Pinger lost around an event, counted in echo requests,
// not time: a missing sequence number is a probe that got no reply.
type Loss struct {
	Probes int // echo requests in the window
	Lost   int // of those, unanswered
	// LongestRun is the longest run of consecutive unanswered requests:
	// the blackout, in probes.
	LongestRun int
}

// LossBetween counts, after Stop, the echo requests sent in [from, to].
// An answered request counts at its reply's arrival (a reply that came
// late still counts as an answer); an unanswered one at the time
// interpolated between the answers around it, since ping sends at a
// steady rate. Sequence numbers are 16 bits in ICMP: a Pinger runs for
// less than the 22 minutes it takes them to wrap.
func (p *Pinger) LossBetween(from, to time.Time) Loss {
	at := make([]time.Time, p.Sent+2) // by sequence number, from 1
	for i, r := range p.Replies {
		if s := p.Seqs[i]; s < len(at) && at[s].IsZero() {
			at[s] = r
		}
	}
	answered := make([]bool, len(at))
	prev := 0 // the last answered sequence number so far
	for s := 1; s <= p.Sent; s++ {
		if !at[s].IsZero() {
			answered[s], prev = true, s
			continue
		}
		next := s + 1
		for next <= p.Sent && at[next].IsZero() {
			next++
		}
		switch {
		case prev > 0 && next <= p.Sent:
			at[s] = at[prev].Add(at[next].Sub(at[prev]) * time.Duration(s-prev) / time.Duration(next-prev))
		case prev > 0:
			at[s] = at[prev].Add(time.Duration(s-prev) * PingInterval)
		case next <= p.Sent:
			at[s] = at[next].Add(-time.Duration(next-s) * PingInterval)
		}
	}
	var l Loss
	run := 0
	for s := 1; s <= p.Sent; s++ {
		if at[s].IsZero() || at[s].Before(from) || at[s].After(to) {
			run = 0
			continue
		}
		l.Probes++
		if answered[s] {
			run = 0
			continue
		}
		l.Lost++
		run++
		l.LongestRun = max(l.LongestRun, run)
	}
	return l
}

// LongestGap is the longest time between consecutive replies (or between
// from and the first reply after it) that overlaps [from, to].
func LongestGap(replies []time.Time, from, to time.Time) time.Duration {
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
