package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/cwcluster"
)

// probe reads the agent's node from outside: its nft set through netlink
// in the node's namespace, its WireGuard device through the UAPI socket,
// its /metrics, its RSS and its log.
type probe struct {
	e    *env
	ns   netns.NsHandle
	conn *nftables.Conn
	http *http.Client
}

func newProbe(e *env) (*probe, error) {
	ns, err := netns.GetFromName(e.node.NS)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", e.node.NS, err)
	}
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("nftables in %s: %w", e.node.NS, err)
	}
	tr := &http.Transport{DialContext: apiserver.DialerIn(e.node.NS), DisableKeepAlives: true}
	return &probe{e: e, ns: ns, conn: conn, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}, nil
}

func (p *probe) close() {
	p.conn.CloseLasting()
	p.ns.Close()
}

var crosswireTable = &nftables.Table{Name: cwcluster.NftTable, Family: nftables.TableFamilyINet}

// remote4 returns the number of prefixes in the remote4 set (interval
// starts), or -1 while the table is not there yet.
func (p *probe) remote4() (int, error) {
	set, err := p.conn.GetSetByName(crosswireTable, "remote4")
	if err != nil {
		return -1, nil // not created yet
	}
	elems, err := p.conn.GetSetElements(set)
	if err != nil {
		return -1, fmt.Errorf("read remote4: %w", err)
	}
	n := 0
	for _, el := range elems {
		if !el.IntervalEnd {
			n++
		}
	}
	return n, nil
}

// wgPeers counts the device's peers through its UAPI socket, as `wg show`
// does.
func (p *probe) wgPeers() (int, error) {
	path := filepath.Join(p.e.cw.SocketDir(p.e.node), p.e.cw.Iface(p.e.node)+".sock")
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return 0, fmt.Errorf("uapi: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "get=1\n\n"); err != nil {
		return 0, fmt.Errorf("uapi get: %w", err)
	}
	sc := bufio.NewScanner(c)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			return n, nil
		}
		if strings.HasPrefix(line, "public_key=") {
			n++
		}
		if v, ok := strings.CutPrefix(line, "errno="); ok && v != "0" {
			return n, fmt.Errorf("uapi get: errno %s", v)
		}
	}
	return n, fmt.Errorf("uapi get: %w", sc.Err())
}

// rssMiB is the agent's resident set size.
func (p *probe) rssMiB() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.e.agent.Pid()))
	if err != nil {
		return 0, fmt.Errorf("agent status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", p.e.agent.Pid())
}

// metrics scrapes the agent's /metrics and returns the samples without
// labels (name -> value) that crosswire's report uses.
func (p *probe) metrics(ctx context.Context) (map[string]float64, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", cwcluster.MetricsPort)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	return out, nil
}

// logLine is one JSON line of the agent's log.
type logLine struct {
	TS   time.Time `json:"ts"`
	Msg  string    `json:"msg"`
	Took float64   `json:"took"` // seconds
}

// logTimes returns when the agent first logged each of msgs (zero when it
// did not), and the "took" of the first apply.
func (p *probe) logTimes(msgs ...string) (map[string]time.Time, error) {
	f, err := os.Open(p.e.agentLog())
	if err != nil {
		return nil, fmt.Errorf("agent log: %w", err)
	}
	defer f.Close()
	out := map[string]time.Time{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		for _, m := range msgs {
			if _, seen := out[m]; !seen && l.Msg == m {
				out[m] = l.TS
			}
		}
	}
	return out, sc.Err()
}

// elementWatch reports new remote4 elements as they are committed, through
// an nftables monitor in the node's namespace: the event run waits on it
// instead of dumping a set of thousands of elements in a loop, which would
// compete with the agent for the CPU it measures.
type elementWatch struct {
	mon    *nftables.Monitor
	starts chan seenElement
}

// seenElement is an interval start and when the monitor received it.
type seenElement struct {
	addr netip.Addr
	at   time.Time
}

func (p *probe) watchElements() (*elementWatch, error) {
	// Every object: with a narrower filter, nftables v0.3.0 also drops
	// the generation message it delivers each batch on, and reports
	// nothing.
	mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(1024))
	events, err := p.conn.AddMonitor(mon)
	if err != nil {
		return nil, fmt.Errorf("nftables monitor: %w", err)
	}
	w := &elementWatch{mon: mon, starts: make(chan seenElement, 4096)}
	go func() {
		defer close(w.starts)
		for ev := range events {
			if ev.Type != nftables.MonitorEventTypeNewSetElem || ev.Error != nil {
				continue
			}
			now := time.Now()
			elems, _ := ev.Data.([]nftables.SetElement)
			for _, el := range elems {
				if a, ok := netip.AddrFromSlice(el.Key); ok && !el.IntervalEnd {
					select {
					case w.starts <- seenElement{a.Unmap(), now}:
					default: // nobody waits for it
					}
				}
			}
		}
	}()
	return w, nil
}

// wait returns when the monitor saw an element starting at a committed.
func (w *elementWatch) wait(a netip.Addr, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		select {
		case got, ok := <-w.starts:
			if !ok {
				return time.Time{}, fmt.Errorf("nftables monitor closed before %s appeared", a)
			}
			if got.addr == a {
				return got.at, nil
			}
		case <-deadline:
			return time.Time{}, fmt.Errorf("%s not in remote4 within %v", a, timeout)
		}
	}
}

func (w *elementWatch) close() { _ = w.mon.Close() }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux architecture the agent runs on.
const userHZ = 100

// cpuSeconds is the agent's CPU time so far (user + system, all threads).
func (p *probe) cpuSeconds() (float64, error) {
	return procCPUSeconds(p.e.agent.Pid())
}

func procCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("agent stat: %w", err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a
// /proc/<pid>/stat line; the command name (field 2) may hold spaces and
// parentheses, so fields are counted from its last ')'.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command name", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("stat %q: too few fields", stat)
	}
	var ticks float64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat %q: %w", stat, err)
		}
		ticks += float64(v)
	}
	return ticks / userHZ, nil
}

// nodeBytes is the size of fake node i as the API serves it (JSON, with
// managedFields), and its number of managedFields entries.
func nodeBytes(ctx context.Context, e *env, i int) (int, int, error) {
	raw, err := e.admin.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + fakeName(i)).DoRaw(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("get %s: %w", fakeName(i), err)
	}
	var n struct {
		Metadata struct {
			ManagedFields []json.RawMessage `json:"managedFields"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, 0, fmt.Errorf("decode %s: %w", fakeName(i), err)
	}
	return len(raw), len(n.Metadata.ManagedFields), nil
}
