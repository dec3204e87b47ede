package soak

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/crosswire/crosswire/test/netcluster"
)

// Flow is one continuous probe between two nodes' pods: it records the
// time of every answer, so the longest stretch without answers around a
// fault is the flow's blackout.
type Flow struct {
	// Started and Stopped bound the flow's life (Stopped is zero while it
	// runs): the spare node's flows live only while it is joined.
	Started, Stopped time.Time
	Name             string
	Kind             string // ping4, ping6, tcp4, tcp6, vip
	Src, Dst         int    // node indexes
	mu               sync.Mutex
	answers          []time.Time
	// resets counts TCP streams that broke and were dialled again.
	resets atomic.Int64
	stop   func()
}

func (f *Flow) record(t time.Time) {
	f.mu.Lock()
	f.answers = append(f.answers, t)
	f.mu.Unlock()
}

// AnsweredSince reports whether an answer arrived after t.
func (f *Flow) AnsweredSince(t time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.answers) > 0 && f.answers[len(f.answers)-1].After(t)
}

// Answers returns a copy of the answer times.
func (f *Flow) Answers() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.answers...)
}

// Touches reports whether the flow runs between node a and another node.
func (f *Flow) Touches(a int) bool { return f.Src == a || f.Dst == a }

// ResetCount is how often a TCP stream had to dial again.
func (f *Flow) ResetCount() int { return int(f.resets.Load()) }

// Stop ends the probe.
func (f *Flow) Stop() {
	f.stop()
	f.mu.Lock()
	if f.Stopped.IsZero() {
		f.Stopped = time.Now()
	}
	f.mu.Unlock()
}

// Life returns when the flow started and stopped (now, if it runs).
func (f *Flow) Life() (time.Time, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Stopped.IsZero() {
		return f.Started, time.Now()
	}
	return f.Started, f.Stopped
}

// pingInterval is how often ping flows send: fine enough for heal bounds
// of seconds, light enough for 24 flows on 2 shared cores for 10 minutes.
const pingInterval = 100 * time.Millisecond

var replyRE = regexp.MustCompile(`^\[(\d+)\.(\d+)\] \d+ bytes from `)

// startPing pings dst from ns continuously, parsing replies as they come.
func startPing(name, kind string, src, dst int, ns string, ip netip.Addr) (*Flow, error) {
	f := &Flow{Name: name, Kind: kind, Src: src, Dst: dst, Started: time.Now()}
	cmd := exec.Command("ip", "netns", "exec", ns, "ping", "-n", "-D", "-i",
		strconv.FormatFloat(pingInterval.Seconds(), 'f', -1, 64), "-W", "1", ip.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ping %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m := replyRE.FindStringSubmatch(sc.Text())
			if m == nil {
				continue
			}
			sec, _ := strconv.ParseInt(m[1], 10, 64)
			frac := (m[2] + "000000000")[:9]
			nsec, _ := strconv.ParseInt(frac, 10, 64)
			f.record(time.Unix(sec, nsec))
		}
	}()
	var once sync.Once
	f.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGINT)
			<-done
			_ = cmd.Wait()
		})
	}
	return f, nil
}

// tcpInterval is how often a stream sends its next message once the
// previous one came back.
const tcpInterval = 100 * time.Millisecond

// tcpStall is how long a stream waits for an echo before it gives the
// connection up and dials again: longer than any heal bound, so a stream
// only resets when TCP itself gave up.
const tcpStall = 90 * time.Second

// startStream keeps one TCP connection from ns to addr (an echo server)
// and sends a small message every tcpInterval, recording each echo.
func startStream(name, kind string, src, dst int, ns string, addr netip.AddrPort) *Flow {
	f := &Flow{Name: name, Kind: kind, Src: src, Dst: dst, Started: time.Now()}
	quit := make(chan struct{})
	done := make(chan struct{})
	var mu sync.Mutex
	var conn net.Conn
	go func() {
		defer close(done)
		msg := make([]byte, 64)
		buf := make([]byte, 64)
		for first := true; ; first = false {
			select {
			case <-quit:
				return
			default:
			}
			if !first {
				time.Sleep(time.Second)
				f.resets.Add(1)
			}
			var c net.Conn
			err := netcluster.Do(ns, func() error {
				var err error
				c, err = net.DialTimeout("tcp", addr.String(), 5*time.Second)
				return err
			})
			if err != nil {
				continue
			}
			mu.Lock()
			conn = c
			mu.Unlock()
			for seq := 0; ; seq++ {
				copy(msg, fmt.Sprintf("%s %d", name, seq))
				_ = c.SetDeadline(time.Now().Add(tcpStall))
				if _, err := c.Write(msg); err != nil {
					break
				}
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != string(msg) {
					break
				}
				f.record(time.Now())
				select {
				case <-quit:
					c.Close()
					return
				case <-time.After(tcpInterval):
				}
			}
			c.Close()
		}
	}()
	var once sync.Once
	f.stop = func() {
		once.Do(func() {
			close(quit)
			mu.Lock()
			if conn != nil {
				conn.Close()
			}
			mu.Unlock()
			<-done
		})
	}
	return f
}

// vipInterval is how often a Service flow opens a new connection.
const vipInterval = 500 * time.Millisecond

// startVIP opens a new connection from ns to the Service VIP every
// vipInterval (so every attempt goes through DNAT and the marking anew)
// and records each one that got its echo.
func startVIP(name string, src, dst int, ns string, vip netip.AddrPort) *Flow {
	f := &Flow{Name: name, Kind: "vip", Src: src, Dst: dst, Started: time.Now()}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		payload := []byte("crosswire-soak " + name)
		for {
			got, err := netcluster.DialTCP(ns, vip, payload, time.Second)
			if err == nil && string(got) == string(payload) {
				f.record(time.Now())
			}
			select {
			case <-quit:
				return
			case <-time.After(vipInterval):
			}
		}
	}()
	var once sync.Once
	f.stop = func() { once.Do(func() { close(quit); <-done }) }
	return f
}

// echoServer echoes every TCP connection until the peer closes it, with
// no deadline (netcluster's closes connections after a minute, which
// would break every stream once a minute of a long soak).
type echoServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func serveEcho(ns string, addr netip.AddrPort) (*echoServer, error) {
	s := &echoServer{conns: map[net.Conn]struct{}{}}
	err := netcluster.Do(ns, func() error {
		var err error
		s.ln, err = net.Listen("tcp", addr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("echo server %s in %s: %w", addr, ns, err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

// Close stops the server and drops its connections.
func (s *echoServer) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
