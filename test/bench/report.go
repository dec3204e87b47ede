package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is everything a run wrote: raw samples, their summaries per
// metric and mode, the crosswire/reference ratios, and the machine.
type Report struct {
	Config  Config                     `json:"config"`
	Machine Machine                    `json:"machine"`
	Samples []Sample                   `json:"samples"`
	Summary map[string]map[string]Stat `json:"summary"` // metric -> mode -> stat
	Ratios  map[string]float64         `json:"ratio_crosswire_over_reference"`
	// Paired compares the two modes round by round (they ran minutes
	// apart in the same round): more robust than the ratio of medians
	// when the machine's load drifts.
	Paired  map[string]Stat           `json:"paired_ratio_per_round"`
	Targets map[string]map[string]any `json:"targets"`
}

// Machine describes where the figures come from; they mean little without
// it on a shared machine.
type Machine struct {
	Time        string `json:"time"`
	Nproc       int    `json:"nproc"`
	Kernel      string `json:"kernel"`
	Go          string `json:"go"`
	IPerf3      string `json:"iperf3"`
	WireGuardGo string `json:"wireguard_go"`
	LoadBefore  string `json:"loadavg_before"`
	LoadAfter   string `json:"loadavg_after"`
	TunnelMTU   int    `json:"tunnel_mtu"`
	Cluster     string `json:"cluster_prefix"`
}

// Stat is the median and range of one metric of one mode over the rounds.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func machineInfo(cfg Config) Machine {
	first := func(argv ...string) string {
		out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	return Machine{
		Time:        time.Now().UTC().Format(time.RFC3339),
		Nproc:       runtime.NumCPU(),
		Kernel:      first("uname", "-r"),
		Go:          runtime.Version(),
		IPerf3:      first("iperf3", "--version"),
		WireGuardGo: first(cfg.WireGuardGo, "--version") + " (module " + WireGuardVersion + ")",
		TunnelMTU:   TunnelMTU,
	}
}

// metrics lists the reported metrics in table order, with their headings.
var metrics = []struct{ key, title string }{
	{"tcp1_gbps", "TCP throughput, 1 stream (Gbit/s)"},
	{"tcp4_gbps", "TCP throughput, 4 streams (Gbit/s)"},
	{"tcp1_cpu_total_s_per_gb", "CPU s/GB, 1 stream: tunnel processes (both nodes) + softirq (machine-wide)"},
	{"tcp1_cpu_node1_s_per_gb", "CPU s/GB, 1 stream: tunnel process on node1 (sender)"},
	{"tcp1_cpu_node2_s_per_gb", "CPU s/GB, 1 stream: tunnel process on node2 (receiver)"},
	{"tcp1_softirq_s_per_gb", "CPU s/GB, 1 stream: softirq (machine-wide)"},
	{"tcp4_cpu_total_s_per_gb", "CPU s/GB, 4 streams: tunnel processes (both nodes) + softirq (machine-wide)"},
	{"tcp4_cpu_node1_s_per_gb", "CPU s/GB, 4 streams: tunnel process on node1 (sender)"},
	{"tcp4_cpu_node2_s_per_gb", "CPU s/GB, 4 streams: tunnel process on node2 (receiver)"},
	{"tcp4_softirq_s_per_gb", "CPU s/GB, 4 streams: softirq (machine-wide)"},
	{"tcp4_machine_busy_s_per_gb", "CPU s/GB, 4 streams: whole machine busy (iperf3 included)"},
	{"tcp1_retransmits", "TCP retransmits, 1 stream"},
	{"tcp4_retransmits", "TCP retransmits, 4 streams"},
	{"rtt_idle_p50_ms", "ping RTT idle, p50 (ms)"},
	{"rtt_idle_p99_ms", "ping RTT idle, p99 (ms)"},
	{"rtt_load_p50_ms", "ping RTT during the 1-stream transfer, p50 (ms)"},
	{"rtt_load_p99_ms", "ping RTT during the 1-stream transfer, p99 (ms)"},
	{"rtt_idle_loss_pct", "ping loss idle (%)"},
	{"rtt_load_loss_pct", "ping loss during the 1-stream transfer (%)"},
}

func (r *Report) summarize() {
	r.Summary = map[string]map[string]Stat{}
	r.Ratios = map[string]float64{}
	r.Paired = map[string]Stat{}
	for _, m := range metrics {
		r.Summary[m.key] = map[string]Stat{}
		for _, mode := range modes {
			var v []float64
			for _, s := range r.Samples {
				if s.Mode == mode {
					v = append(v, s.Metrics[m.key])
				}
			}
			if len(v) == 0 {
				continue
			}
			r.Summary[m.key][mode] = Stat{Median: median(v), Min: slices.Min(v), Max: slices.Max(v), N: len(v)}
		}
		if ref := r.Summary[m.key][Reference].Median; ref != 0 {
			r.Ratios[m.key] = r.Summary[m.key][Crosswire].Median / ref
		}
		var paired []float64
		for _, cw := range r.Samples {
			for _, ref := range r.Samples {
				if cw.Mode == Crosswire && ref.Mode == Reference && cw.Round == ref.Round && ref.Metrics[m.key] != 0 {
					paired = append(paired, cw.Metrics[m.key]/ref.Metrics[m.key])
				}
			}
		}
		if len(paired) > 0 && !strings.Contains(m.key, "retransmits") && !strings.Contains(m.key, "loss") {
			r.Paired[m.key] = Stat{Median: median(paired), Min: slices.Min(paired), Max: slices.Max(paired), N: len(paired)}
		}
	}
	// The datapath targets, reported, never asserted: throughput ≥ 1.0×
	// reference, CPU/GB ≤ 1.0×, RTT ≤ reference + 5 %.
	r.Targets = map[string]map[string]any{}
	target := func(key, cmp string, limit float64) {
		ratio, ok := r.Ratios[key]
		if !ok {
			return
		}
		met := ratio >= limit
		if cmp == "<=" {
			met = ratio <= limit
		}
		r.Targets[key] = map[string]any{"ratio": ratio, "want": cmp + " " + fmt.Sprint(limit), "met": met}
	}
	target("tcp1_gbps", ">=", 1.0)
	target("tcp4_gbps", ">=", 1.0)
	target("tcp1_cpu_total_s_per_gb", "<=", 1.0)
	target("tcp4_cpu_total_s_per_gb", "<=", 1.0)
	target("rtt_idle_p50_ms", "<=", 1.05)
	target("rtt_load_p50_ms", "<=", 1.05)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Write writes bench-datapath.json, bench-datapath.md and bench-datapath.png
// into dir.
func (r *Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-datapath.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-datapath.md"), []byte(r.Markdown()), 0o644); err != nil {
		return err
	}
	if err := r.WritePNG(filepath.Join(dir, "bench-datapath.png")); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// Markdown renders one table row per metric: each mode's median [min–max]
// and the crosswire/reference ratio of the medians.
func (r *Report) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# crosswire datapath benchmark\n\n")
	fmt.Fprintf(&b, "%s, %d CPUs, kernel %s, %s, %s, reference %s.\n", m.Time, m.Nproc, m.Kernel, m.Go, m.IPerf3, m.WireGuardGo)
	fmt.Fprintf(&b, "Load average before %s, after %s.\n\n", m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(&b, "2-node namespace cluster, pod → pod across nodes, %d rounds (modes interleaved, order rotated each round), "+
		"iperf3 %v per measurement, %d pings 10 ms apart; tunnel MTU %d in both tunnel modes. "+
		"Median [min–max] over the rounds; ratio = crosswire / reference (medians); "+
		"same-round ratio = median [min–max] of crosswire / reference within each round. "+
		"softirq is machine-wide (all namespaces share the CPUs); s/GB = CPU seconds per 1e9 bytes received. "+
		"Underlay veth GRO: %s. Reference with crosswire's policy rule: %s.\n\n",
		r.Config.Rounds, r.Config.Duration, r.Config.Pings, m.TunnelMTU, map[bool]string{true: "on", false: "off (veth default)"}[r.Config.UnderlayGRO],
		map[bool]string{true: "yes", false: "no"}[r.Config.ReferenceRule])
	b.WriteString("| metric | plaintext | reference (wireguard-go) | crosswire | crosswire / reference | same-round ratio |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: |\n")
	for _, mt := range metrics {
		fmt.Fprintf(&b, "| %s |", mt.title)
		for _, mode := range modes {
			st, ok := r.Summary[mt.key][mode]
			switch {
			case !ok:
				b.WriteString(" – |")
			case (mode == Plaintext && strings.Contains(mt.key, "_node")):
				b.WriteString(" (no tunnel) |")
			default:
				fmt.Fprintf(&b, " %s [%s–%s] |", num(st.Median), num(st.Min), num(st.Max))
			}
		}
		if ratio, ok := r.Ratios[mt.key]; ok {
			fmt.Fprintf(&b, " %.2f× |", ratio)
		} else {
			b.WriteString(" – |")
		}
		if p, ok := r.Paired[mt.key]; ok {
			fmt.Fprintf(&b, " %.2f× [%.2f–%.2f] |\n", p.Median, p.Min, p.Max)
		} else {
			b.WriteString(" – |\n")
		}
	}
	b.WriteString("\nTargets (reported, not asserted):\n\n")
	for _, k := range []string{"tcp1_gbps", "tcp4_gbps", "tcp1_cpu_total_s_per_gb", "tcp4_cpu_total_s_per_gb", "rtt_idle_p50_ms", "rtt_load_p50_ms"} {
		t, ok := r.Targets[k]
		if !ok {
			continue
		}
		verdict := "missed"
		if t["met"] == true {
			verdict = "met"
		}
		fmt.Fprintf(&b, "- %s: %.2f× (want %s): %s\n", k, t["ratio"], t["want"], verdict)
	}
	b.WriteString("\n![datapath](bench-datapath.png)\n")
	return b.String()
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 0.1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
