package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

// WireGuardVersion is the golang.zx2c4.com/wireguard version of the root
// go.mod, which names the reference binary's cache directory; the smoke
// test checks that the two agree.
const WireGuardVersion = "v0.0.0-20260522210424-ecfc5a8d5446"

// TunnelMTU is the reference devices' MTU: what crosswire derives for a
// 1500-byte IPv4 underlay (1500 - 60). The crosswire mode records the MTU
// its agents actually chose, and Run warns if it differs.
const TunnelMTU = 1440

// Modes, in the order of the first round.
const (
	Plaintext = "plaintext"
	Reference = "reference"
	Crosswire = "crosswire"
)

var modes = []string{Plaintext, Reference, Crosswire}

// Config is one benchmark run.
type Config struct {
	Rounds      int           `json:"rounds"`
	Duration    time.Duration `json:"-"` // per iperf3 measurement
	Seconds     float64       `json:"iperf3_seconds"`
	Pings       int           `json:"pings"`
	Bin         string        `json:"crosswire_bin"` // built when empty
	WireGuardGo string        `json:"wireguard_go_bin"`
	Out         string        `json:"out"`
	// UnderlayGRO turns on generic receive offload on the underlay veths
	// (off by default on veth; on for most physical NICs), so both tunnel
	// modes receive coalesced WireGuard UDP. Needs ethtool.
	UnderlayGRO bool `json:"underlay_gro"`
	// ReferenceRule adds crosswire's fwmark policy rule (which matches
	// nothing there) to the reference mode's nodes: with any custom rule
	// the kernel checks the source route of every received packet in
	// full, so this measures what the rule alone costs.
	ReferenceRule bool `json:"reference_rule"`
}

func defaultConfig() Config {
	return Config{
		Rounds:      3,
		Duration:    5 * time.Second,
		Pings:       200,
		WireGuardGo: defaultWireGuardGo(),
	}
}

func defaultWireGuardGo() string {
	root := os.Getenv("CROSSWIRE_TOOLS")
	if root == "" {
		root = "/var/cache/crosswire/tools"
	}
	return filepath.Join(root, "wireguard-go-"+WireGuardVersion, "wireguard-go")
}

// Sample is one mode's figures in one round. CPU figures are seconds per
// GB (1e9 bytes) received by the iperf3 server.
type Sample struct {
	Round   int                `json:"round"`
	Mode    string             `json:"mode"`
	Metrics map[string]float64 `json:"metrics"`
}

// Run builds the cluster, runs every round and removes everything again,
// also on failure or cancellation.
func Run(ctx context.Context, cfg Config, progress io.Writer) (rep *Report, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root (network namespaces)")
	}
	if cfg.Rounds < 1 || cfg.Duration < time.Second || cfg.Pings < 2 {
		return nil, fmt.Errorf("config %+v: want rounds ≥ 1, time ≥ 1s, pings ≥ 2", cfg)
	}
	if _, err := os.Stat(cfg.WireGuardGo); err != nil {
		return nil, fmt.Errorf("reference wireguard-go: %w; build it with: make tools (or test/tools/build.sh)", err)
	}
	for _, tool := range []string{"iperf3", "wg", "ping", "ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s: %w (scripts/install-deps.sh installs it)", tool, err)
		}
	}
	logf := func(format string, a ...any) { fmt.Fprintf(progress, "bench: "+format+"\n", a...) }

	if cfg.Bin == "" {
		dir, err := os.MkdirTemp("", "crosswire-bench-bin-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Bin = filepath.Join(dir, "crosswire")
		logf("building crosswire")
		if out, err := exec.Command("go", "build", "-o", cfg.Bin, "github.com/crosswire/crosswire/cmd/crosswire").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build crosswire: %w\n%s", err, out)
		}
	}

	cfg.Seconds = cfg.Duration.Seconds()
	rep = &Report{Config: cfg, Machine: machineInfo(cfg)}
	c, err := netcluster.Build(netcluster.Options{Nodes: 2, PodsPerNode: 1})
	if err != nil {
		return nil, err
	}
	rep.Machine.Cluster = c.Prefix
	b := &bench{cfg: cfg, c: c, logf: logf, rep: rep}
	defer func() {
		err = errors.Join(err, b.cleanupAll(), c.Close())
	}()
	if cfg.UnderlayGRO {
		if err := underlayGRO(c); err != nil {
			return nil, err
		}
		logf("GRO on on the underlay veths")
	}
	logf("cluster %s: 2 nodes, 1 pod each; %d rounds x %d modes, iperf3 %v per measurement, %d pings",
		c.Prefix, cfg.Rounds, len(modes), cfg.Duration, cfg.Pings)

	loadBefore := loadavg()
	for r := 1; r <= cfg.Rounds; r++ {
		// Rotate the order so no mode always runs first (or right after
		// the same other mode) on a machine whose load drifts.
		for i := range modes {
			mode := modes[(i+r-1)%len(modes)]
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			s, err := b.runMode(ctx, r, mode)
			if err != nil {
				return nil, fmt.Errorf("round %d %s: %w", r, mode, err)
			}
			rep.Samples = append(rep.Samples, s)
		}
	}
	if err := verifyClean(c); err != nil {
		return nil, fmt.Errorf("after the last mode: %w", err)
	}
	rep.Machine.LoadBefore, rep.Machine.LoadAfter = loadBefore, loadavg()
	rep.summarize()
	return rep, nil
}

type bench struct {
	cfg  Config
	c    *netcluster.Cluster
	logf func(string, ...any)
	rep  *Report

	// what a mode left running, for cleanupAll on failure
	refs []*refTunnel
	cw   *cwcluster.Cluster
}

// tunnel is what runMode measures: per node, the process doing the
// encryption (none in plaintext) and its device.
type tunnel struct {
	pids  [2]int
	iface [2]string
}

func (b *bench) runMode(ctx context.Context, round int, mode string) (Sample, error) {
	s := Sample{Round: round, Mode: mode, Metrics: map[string]float64{}}
	prefix := fmt.Sprintf("round %d/%d: %-9s", round, b.cfg.Rounds, mode)
	if err := verifyClean(b.c); err != nil {
		return s, fmt.Errorf("before %s: %w", mode, err)
	}
	var tun tunnel
	var err error
	start := time.Now()
	switch mode {
	case Reference:
		tun, err = b.startReference()
	case Crosswire:
		tun, err = b.startCrosswire()
		if err == nil {
			s.Metrics["tunnel_mtu"] = float64(linkMTU(b.c.Nodes[0].NS, tun.iface[0]))
			if s.Metrics["tunnel_mtu"] != TunnelMTU {
				b.logf("%s: WARNING: crosswire chose MTU %v, the reference runs %d", prefix, s.Metrics["tunnel_mtu"], TunnelMTU)
			}
		}
	}
	if err != nil {
		return s, errors.Join(err, b.stopMode())
	}
	if mode != Plaintext {
		b.logf("%s: tunnel up in %v", prefix, time.Since(start).Round(time.Millisecond))
	}
	err = b.measure(ctx, prefix, tun, s.Metrics)
	return s, errors.Join(err, b.stopMode())
}

func (b *bench) measure(ctx context.Context, prefix string, tun tunnel, m map[string]float64) error {
	src, dst := b.c.Nodes[0].Pods[0], b.c.Nodes[1].Pods[0]
	// Warm up: ARP/neighbour entries, the WireGuard handshake.
	if err := cwcluster.Eventually(10*time.Second, func() error { return netcluster.Ping(src.NS, dst.IP, 1) }); err != nil {
		return fmt.Errorf("%s -> %s: %w", src.Name, dst.Name, err)
	}
	b.logf("%s: ping idle (%d)", prefix, b.cfg.Pings)
	rtt, err := pingRTTs(src.NS, dst.IP, b.cfg.Pings)
	if err != nil {
		return err
	}
	m["rtt_idle_p50_ms"], m["rtt_idle_p99_ms"] = percentile(rtt, 50), percentile(rtt, 99)
	m["rtt_idle_loss_pct"] = 100 * float64(b.cfg.Pings-len(rtt)) / float64(b.cfg.Pings)
	b.logf("%s: ping idle p50 %.3f ms p99 %.3f ms", prefix, m["rtt_idle_p50_ms"], m["rtt_idle_p99_ms"])

	for _, streams := range []int{1, 4} {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.logf("%s: iperf3 %d stream(s), %v", prefix, streams, b.cfg.Duration)
		var loaded []float64
		var pingErr error
		pingDone := make(chan struct{})
		withPing := streams == 1
		if withPing {
			go func() {
				defer close(pingDone)
				// Into the transfer, once the window has opened.
				time.Sleep(b.cfg.Duration / 5)
				loaded, pingErr = pingRTTs(src.NS, dst.IP, b.cfg.Pings)
			}()
		}
		r, err := b.iperf(src, dst, streams, tun)
		if withPing {
			<-pingDone
		}
		if err != nil {
			return err
		}
		k := fmt.Sprintf("tcp%d_", streams)
		gb := float64(r.bytes) / 1e9
		m[k+"gbps"] = r.bps / 1e9
		m[k+"retransmits"] = float64(r.retransmits)
		m[k+"cpu_node1_s_per_gb"] = r.tunnelCPU[0] / gb
		m[k+"cpu_node2_s_per_gb"] = r.tunnelCPU[1] / gb
		m[k+"softirq_s_per_gb"] = r.softirq / gb
		m[k+"cpu_total_s_per_gb"] = (r.tunnelCPU[0] + r.tunnelCPU[1] + r.softirq) / gb
		m[k+"machine_busy_s_per_gb"] = r.busy / gb
		msg := fmt.Sprintf("%s: %d stream(s): %.2f Gbit/s, tunnel+softirq %.2f s/GB", prefix, streams, m[k+"gbps"], m[k+"cpu_total_s_per_gb"])
		if withPing {
			if pingErr != nil {
				return fmt.Errorf("ping under load: %w", pingErr)
			}
			m["rtt_load_p50_ms"], m["rtt_load_p99_ms"] = percentile(loaded, 50), percentile(loaded, 99)
			m["rtt_load_loss_pct"] = 100 * float64(b.cfg.Pings-len(loaded)) / float64(b.cfg.Pings)
			msg += fmt.Sprintf(", ping under load p50 %.3f ms p99 %.3f ms", m["rtt_load_p50_ms"], m["rtt_load_p99_ms"])
		}
		b.logf("%s", msg)
	}
	return nil
}

type iperfResult struct {
	bps         float64
	bytes       int64
	retransmits int64
	tunnelCPU   [2]float64 // seconds
	softirq     float64    // seconds, machine-wide
	busy        float64    // seconds, machine-wide, everything but idle and iowait
}

const iperfPort = 5201

// iperf runs one iperf3 transfer from src to dst and the CPU the tunnel
// processes and softirq spent during it.
func (b *bench) iperf(src, dst *netcluster.Pod, streams int, tun tunnel) (iperfResult, error) {
	var r iperfResult
	srv, err := b.c.Start(dst.NS, "", "iperf3", "-s", "-1", "-p", strconv.Itoa(iperfPort))
	if err != nil {
		return r, err
	}
	defer srv.Kill()
	if err := cwcluster.Eventually(5*time.Second, func() error {
		out, err := netcluster.Exec(dst.NS, "ss", "-Hltn", fmt.Sprintf("sport = :%d", iperfPort))
		if err == nil && strings.TrimSpace(out) == "" {
			err = errors.New("iperf3 server not listening yet")
		}
		return err
	}); err != nil {
		return r, fmt.Errorf("%w\n%s", err, srv.Log())
	}

	var cpu0 [2]float64
	for i, pid := range tun.pids {
		if pid != 0 {
			if cpu0[i], err = procCPU(pid); err != nil {
				return r, err
			}
		}
	}
	soft0, busy0, err := systemCPU()
	if err != nil {
		return r, err
	}
	var tx0 int64
	if tun.iface[0] != "" {
		tx0 = linkTxBytes(b.c.Nodes[0].NS, tun.iface[0])
	}
	secs := int(b.cfg.Duration / time.Second)
	out, err := netcluster.Exec(src.NS, "iperf3", "-c", dst.IP.String(), "-p", strconv.Itoa(iperfPort),
		"-t", strconv.Itoa(secs), "-P", strconv.Itoa(streams), "-J")
	if err != nil {
		return r, err
	}
	soft1, busy1, err := systemCPU()
	if err != nil {
		return r, err
	}
	for i, pid := range tun.pids {
		if pid != 0 {
			c1, err := procCPU(pid)
			if err != nil {
				return r, err
			}
			r.tunnelCPU[i] = c1 - cpu0[i]
		}
	}
	r.softirq, r.busy = soft1-soft0, busy1-busy0

	var res struct {
		End struct {
			SumSent struct {
				Retransmits int64 `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				Bytes         int64   `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return r, fmt.Errorf("iperf3 JSON: %w: %.300s", err, out)
	}
	if res.Error != "" || res.End.SumReceived.Bytes <= 0 {
		return r, fmt.Errorf("iperf3: %q, %d bytes received", res.Error, res.End.SumReceived.Bytes)
	}
	r.bps, r.bytes, r.retransmits = res.End.SumReceived.BitsPerSecond, res.End.SumReceived.Bytes, res.End.SumSent.Retransmits
	// The tunnel modes must really have carried the transfer.
	if tun.iface[0] != "" {
		if sent := linkTxBytes(b.c.Nodes[0].NS, tun.iface[0]) - tx0; sent < r.bytes/2 {
			return r, fmt.Errorf("%s on node1 sent %d bytes during a %d-byte transfer: traffic bypassed the tunnel", tun.iface[0], sent, r.bytes)
		}
	}
	return r, nil
}

// refTunnel is one node's hand-configured reference device.
type refTunnel struct {
	node, peer *netcluster.Node
	iface      string
	proc       *netcluster.Process
	rule       bool // Config.ReferenceRule added the policy rule
}

// refIface names node n's reference device: "wgr", the run's random prefix
// digits and the node index (wgr1a2bn1), unique per run because every
// userspace device's UAPI socket lands in the host's /var/run/wireguard.
func refIface(c *netcluster.Cluster, n *netcluster.Node) string {
	return fmt.Sprintf("wgr%sn%d", strings.TrimPrefix(c.Prefix, "cw"), n.Index)
}

// startReference does what an operator does without crosswire: start
// wireguard-go on each node, configure it with wg, bring it up with the
// same MTU crosswire uses, and route the remote pod CIDR into it instead
// of over the underlay.
func (b *bench) startReference() (tunnel, error) {
	var tun tunnel
	nodes := b.c.Nodes
	pubs := map[*netcluster.Node]string{}
	keys := map[*netcluster.Node]string{}
	for _, n := range nodes {
		key, err := exec.Command("wg", "genkey").Output()
		if err != nil {
			return tun, fmt.Errorf("wg genkey: %w", err)
		}
		keys[n] = filepath.Join(b.c.Root, n.Name+"-wgref.key")
		if err := os.WriteFile(keys[n], key, 0o600); err != nil {
			return tun, err
		}
		cmd := exec.Command("wg", "pubkey")
		cmd.Stdin = strings.NewReader(string(key))
		pub, err := cmd.Output()
		if err != nil {
			return tun, fmt.Errorf("wg pubkey: %w", err)
		}
		pubs[n] = strings.TrimSpace(string(pub))
	}
	for i, n := range nodes {
		peer := nodes[1-i]
		ref := &refTunnel{node: n, peer: peer, iface: refIface(b.c, n)}
		p, err := b.c.Start(n.NS, "", b.cfg.WireGuardGo, "-f", ref.iface)
		if err != nil {
			return tun, err
		}
		ref.proc = p
		b.refs = append(b.refs, ref)
		sock := filepath.Join(cwcluster.HostSocketDir, ref.iface+".sock")
		if err := cwcluster.Eventually(5*time.Second, func() error {
			if p.Exited() {
				return fmt.Errorf("wireguard-go exited: %s", p.Log())
			}
			_, err := os.Stat(sock)
			return err
		}); err != nil {
			return tun, err
		}
		if _, err := netcluster.Exec(n.NS, "wg", "set", ref.iface,
			"private-key", keys[n], "listen-port", strconv.Itoa(cwcluster.ListenPort),
			"peer", pubs[peer], "endpoint", netip.AddrPortFrom(peer.UnderlayIP, cwcluster.ListenPort).String(),
			"allowed-ips", peer.PodCIDR.String()); err != nil {
			return tun, err
		}
		if _, err := netcluster.Exec(n.NS, "ip", "link", "set", ref.iface, "mtu", strconv.Itoa(TunnelMTU), "up"); err != nil {
			return tun, err
		}
		if _, err := netcluster.Exec(n.NS, "ip", "route", "replace", peer.PodCIDR.String(), "dev", ref.iface); err != nil {
			return tun, err
		}
		if b.cfg.ReferenceRule {
			ref.rule = true
			if _, err := netcluster.Exec(n.NS, "ip", "rule", "add", "fwmark", "0x1000/0x1000", "lookup", "202", "priority", "1200"); err != nil {
				return tun, err
			}
		}
		tun.pids[i], tun.iface[i] = p.Pid(), ref.iface
	}
	return tun, nil
}

func (b *bench) startCrosswire() (tunnel, error) {
	var tun tunnel
	// Info, as deployed (the chart's default), not the tests' debug.
	cw, err := cwcluster.Start(b.c, b.cfg.Bin, time.Second, "--log-level", "info")
	b.cw = cw
	if err != nil {
		return tun, err
	}
	if err := cw.WaitConverged(); err != nil {
		return tun, err
	}
	for i, n := range b.c.Nodes {
		tun.pids[i], tun.iface[i] = cw.Agents[n.Name].Pid(), cw.Iface(n)
	}
	// The agents start at a conservative MTU and raise it once they
	// know the peers' underlay: wait for the settled value.
	err = cwcluster.Eventually(10*time.Second, func() error {
		for i, n := range b.c.Nodes {
			if got := linkMTU(n.NS, tun.iface[i]); got != TunnelMTU {
				return fmt.Errorf("%s MTU %d on %s, waiting for %d", tun.iface[i], got, n.Name, TunnelMTU)
			}
		}
		return nil
	})
	if err != nil {
		b.logf("crosswire: %v (measuring anyway)", err)
	}
	return tun, nil
}

// stopMode removes what the current mode set up: the reference devices
// and their routes, or the agents and (crosswire cleanup) their datapath.
func (b *bench) stopMode() error {
	var errs []error
	for _, ref := range b.refs {
		errs = append(errs, stopReference(ref))
	}
	b.refs = nil
	if cw := b.cw; cw != nil {
		b.cw = nil
		for _, n := range b.c.Nodes {
			if p := cw.Agents[n.Name]; p != nil && !p.Exited() {
				if err := cw.StopAgent(n, syscall.SIGTERM); err != nil {
					p.Kill()
					errs = append(errs, err)
				}
			}
			if _, err := netcluster.Exec(n.NS, cw.Bin, "cleanup", "--state-dir", n.StateDir,
				"--socket-dir", cw.SocketDir(n), "--interface", cw.Iface(n)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func stopReference(ref *refTunnel) error {
	var errs []error
	if ref.rule {
		if _, err := netcluster.Exec(ref.node.NS, "ip", "rule", "del", "priority", "1200"); err != nil {
			errs = append(errs, err)
		}
	}
	// host-gw back first: the pod CIDR route via the device dies with it.
	if _, err := netcluster.Exec(ref.node.NS, "ip", "route", "replace", ref.peer.PodCIDR.String(),
		"via", ref.peer.UnderlayIP.String(), "dev", netcluster.UnderlayDev); err != nil {
		errs = append(errs, err)
	}
	if ref.proc != nil && !ref.proc.Exited() {
		_ = ref.proc.Signal(syscall.SIGTERM)
		if err := ref.proc.Wait(5 * time.Second); err != nil {
			ref.proc.Kill()
		}
	}
	// wireguard-go removes both on SIGTERM; SIGKILL leaves them.
	_, _ = netcluster.Exec(ref.node.NS, "ip", "link", "delete", ref.iface)
	if err := os.Remove(filepath.Join(cwcluster.HostSocketDir, ref.iface+".sock")); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cleanupAll runs on the way out, whatever happened: a mode interrupted
// half-way is stopped; sockets of this run's reference devices never stay.
func (b *bench) cleanupAll() error {
	err := b.stopMode()
	for _, n := range b.c.Nodes {
		if e := os.Remove(filepath.Join(cwcluster.HostSocketDir, refIface(b.c, n)+".sock")); e != nil && !errors.Is(e, os.ErrNotExist) {
			err = errors.Join(err, e)
		}
	}
	return err
}

// verifyClean checks that no mode's objects are left on any node: only the
// links, nft tables, rules and routes netcluster builds.
func verifyClean(c *netcluster.Cluster) error {
	for _, n := range c.Nodes {
		out, err := netcluster.Exec(n.NS, "ip", "-o", "link", "show")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			ok := name == "lo" || name == netcluster.UnderlayDev || name == netcluster.PodBridge
			for _, p := range n.Pods {
				ok = ok || name == p.HostVeth
			}
			if !ok {
				return fmt.Errorf("%s: leftover link %s", n.Name, name)
			}
		}
		if out, err = netcluster.Exec(n.NS, "nft", "list", "tables"); err != nil {
			return err
		}
		if strings.TrimSpace(out) != "table ip kubeproxy" {
			return fmt.Errorf("%s: leftover nft tables:\n%s", n.Name, out)
		}
		if out, err = netcluster.Exec(n.NS, "ip", "rule", "show"); err != nil {
			return err
		}
		if strings.Count(strings.TrimSpace(out), "\n") != 2 {
			return fmt.Errorf("%s: leftover ip rules:\n%s", n.Name, out)
		}
		if out, err = netcluster.Exec(n.NS, "ip", "route", "show", "table", "all"); err != nil {
			return err
		}
		for _, m := range c.Nodes {
			if m == n {
				continue
			}
			want := fmt.Sprintf("%s via %s dev %s", m.PodCIDR, m.UnderlayIP, netcluster.UnderlayDev)
			if !strings.Contains(out, want) {
				return fmt.Errorf("%s: host-gw route %q missing:\n%s", n.Name, want, out)
			}
		}
		if strings.Contains(out, fmt.Sprintf("table %d ", cwcluster.Table)) {
			return fmt.Errorf("%s: leftover table %d routes:\n%s", n.Name, cwcluster.Table, out)
		}
	}
	return nil
}

// pingRTTs pings dst from ns count times, 10 ms apart, and returns every
// reply's RTT in milliseconds (ping's summary has no percentiles); fewer
// than count values means loss, which callers report.
func pingRTTs(ns string, dst netip.Addr, count int) ([]float64, error) {
	out, err := netcluster.Exec(ns, "ping", "-n", "-i", "0.01", "-W", "1", "-c", strconv.Itoa(count), dst.String())
	if err != nil && !strings.Contains(out, "time=") {
		return nil, err
	}
	var rtts []float64
	for _, line := range strings.Split(out, "\n") {
		_, after, ok := strings.Cut(line, "time=")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(strings.Fields(after)[0], "ms"), 64)
		if err == nil {
			rtts = append(rtts, v)
		}
	}
	if len(rtts) == 0 {
		return nil, fmt.Errorf("ping %s from %s: no replies: %s", dst, ns, strings.TrimSpace(out))
	}
	return rtts, nil
}

// percentile is the nearest-rank p-th percentile.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

const clockTick = 100 // USER_HZ on Linux

// procCPU returns a process's user+system CPU seconds (all threads).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	// After the command: state(0) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / clockTick, nil
}

// systemCPU returns machine-wide softirq and busy (non-idle, non-iowait)
// CPU seconds from /proc/stat: CPUs are shared by every namespace.
func systemCPU() (softirq, busy float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: %q", line)
	}
	var total float64
	for i, s := range f[1:9] {
		v, _ := strconv.ParseFloat(s, 64)
		if i != 3 && i != 4 {
			total += v
		}
		if i == 6 {
			softirq = v
		}
	}
	return softirq / clockTick, total / clockTick, nil
}

func linkMTU(ns, iface string) int {
	out, err := netcluster.Exec(ns, "cat", "/sys/class/net/"+iface+"/mtu")
	if err != nil {
		return 0
	}
	v, _ := strconv.Atoi(strings.TrimSpace(out))
	return v
}

func linkTxBytes(ns, iface string) int64 {
	out, err := netcluster.Exec(ns, "cat", "/sys/class/net/"+iface+"/statistics/tx_bytes")
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	return v
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

// underlayGRO turns GRO on at both ends of every node's underlay veth.
func underlayGRO(c *netcluster.Cluster) error {
	for _, n := range c.Nodes {
		for _, dev := range []struct{ ns, name string }{{n.NS, netcluster.UnderlayDev}, {c.Underlay, fmt.Sprintf("n%d", n.Index)}} {
			if out, err := exec.Command("ip", "netns", "exec", dev.ns, "ethtool", "-K", dev.name, "gro", "on").CombinedOutput(); err != nil {
				return fmt.Errorf("ethtool -K %s gro on in %s: %w: %s", dev.name, dev.ns, err, out)
			}
		}
	}
	return nil
}
