package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Report is everything one run measured, written as bench-scale.json.
type Report struct {
	Started time.Time    `json:"started"`
	Machine Machine      `json:"machine"`
	Config  ReportConfig `json:"config"`
	Sizes   []SizeResult `json:"sizes"`
	Targets Targets      `json:"targets"`
}

// Machine describes where the figures come from; the machine is shared.
type Machine struct {
	CPUs        int    `json:"cpus"`
	Go          string `json:"go"`
	LoadAtStart string `json:"load_at_start"`
	LoadAtEnd   string `json:"load_at_end"`
}

// ReportConfig is the run's configuration, in JSON-friendly units.
type ReportConfig struct {
	Events          int     `json:"events"`
	ChurnSeconds    float64 `json:"churn_seconds"`
	ChurnRate       float64 `json:"churn_rate_per_second"`
	Heartbeats      int     `json:"heartbeats"`
	HeartbeatRate   float64 `json:"heartbeat_rate_per_second"` // 0: one per node every 100 s
	ImageChangeEach int     `json:"image_change_every"`        // one kubelet update in this many changes images
}

// Targets are the goals for 5000 nodes, for the reader's
// comparison; nothing asserts them.
type Targets struct {
	SyncedToAppliedMs float64 `json:"synced_to_applied_ms"`
	EventP99Ms        float64 `json:"event_p99_ms"`
	RSSMiB            float64 `json:"rss_mib"`
}

// SizeResult is one cluster size.
type SizeResult struct {
	Nodes             int     `json:"nodes"`
	Peers             string  `json:"peers"`   // ModeAll or ModeOnDemand
	Cluster           string  `json:"cluster"` // namespace prefix of the run
	CreateSeconds     float64 `json:"create_seconds"`
	StartToAppliedMs  float64 `json:"start_to_applied_ms"`
	StartToSyncedMs   float64 `json:"start_to_cache_synced_ms"`
	SyncedToAppliedMs float64 `json:"cache_synced_to_applied_ms"`
	WGPeers           int     `json:"wg_peers"`
	RSSAfterSyncMiB   float64 `json:"rss_after_sync_mib"`
	NodeBytes         int     `json:"node_bytes"`
	NodeManagedFields int     `json:"node_managed_fields"`
	Events            int     `json:"events"`
	EventP50Ms        float64 `json:"event_p50_ms"`
	EventP99Ms        float64 `json:"event_p99_ms"`
	EventMaxMs        float64 `json:"event_max_ms"`
	Applies           int     `json:"applies_during_events"`
	ApplyMeanMs       float64 `json:"apply_mean_ms"`
	RSSAfterEventsMiB float64 `json:"rss_after_events_mib"`
	// The heartbeat run: status updates that change nothing crosswire
	// reads.
	LoadAtHeartbeats        string   `json:"load_at_heartbeats,omitempty"`
	HeartbeatRate           float64  `json:"heartbeat_rate_per_second,omitempty"`
	Heartbeats              int      `json:"heartbeats,omitempty"`
	HeartbeatSeconds        float64  `json:"heartbeat_seconds,omitempty"`
	IdleCPUms               float64  `json:"idle_cpu_ms,omitempty"` // over a window as long as the heartbeats'
	HeartbeatCPUms          float64  `json:"heartbeat_cpu_ms,omitempty"`
	CPUPerHeartbeatMs       float64  `json:"cpu_per_heartbeat_ms"`
	AppliesDuringHeartbeats int      `json:"applies_during_heartbeats"`
	RSSAfterHeartbeatsMiB   float64  `json:"rss_after_heartbeats_mib,omitempty"`
	LoadedEvents            int      `json:"events_during_heartbeats,omitempty"`
	LoadedEventP50Ms        float64  `json:"event_during_heartbeats_p50_ms,omitempty"`
	LoadedEventP99Ms        float64  `json:"event_during_heartbeats_p99_ms,omitempty"`
	LoadedEventMaxMs        float64  `json:"event_during_heartbeats_max_ms,omitempty"`
	AddP50Ms                float64  `json:"churn_add_p50_ms,omitempty"`
	AddP99Ms                float64  `json:"churn_add_p99_ms,omitempty"`
	ChurnOps                int      `json:"churn_ops,omitempty"`
	ChurnSeconds            float64  `json:"churn_seconds,omitempty"`
	ChurnCatchUpMs          float64  `json:"churn_catch_up_ms,omitempty"`
	ChurnSamples            []Sample `json:"churn_samples,omitempty"`
}

// Sample is the agent's memory and goroutines at one moment of churn.
type Sample struct {
	At         time.Time `json:"at"`
	RSSMiB     float64   `json:"rss_mib"`
	HeapMiB    float64   `json:"heap_inuse_mib"`
	Goroutines int       `json:"goroutines"`
}

func newReport(cfg Config) *Report {
	return &Report{
		Started: time.Now().UTC(),
		Machine: Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadAtStart: loadavg()},
		Config: ReportConfig{Events: cfg.Events, ChurnSeconds: cfg.Churn.Seconds(), ChurnRate: cfg.ChurnRate,
			Heartbeats: cfg.Heartbeats, HeartbeatRate: cfg.HeartbeatRate, ImageChangeEach: imageChangeEvery},
		Targets: Targets{SyncedToAppliedMs: 1000, EventP99Ms: 50, RSSMiB: 100},
	}
}

func (r *Report) finish() { r.Machine.LoadAtEnd = loadavg() }

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// Write writes bench-scale.json, bench-scale.md and bench-scale.png into dir.
func (r *Report) Write(dir string) error {
	if r.Machine.LoadAtEnd == "" {
		r.finish()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-scale.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write bench-scale.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench-scale.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("write bench-scale.md: %w", err)
	}
	if err := r.WritePNG(filepath.Join(dir, "bench-scale.png")); err != nil {
		return fmt.Errorf("plot bench-scale.png: %w", err)
	}
	return nil
}

// Markdown renders the results table, one column per size.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Control-plane scale (`go run ./test/scale`)\n\n")
	rate := "one per node every 100 s"
	if r.Config.HeartbeatRate > 0 {
		rate = fmt.Sprintf("%g/s", r.Config.HeartbeatRate)
	}
	churn := fmt.Sprintf("churn %.0f s at %.0f adds+deletes/s", r.Config.ChurnSeconds, r.Config.ChurnRate)
	if r.Config.ChurnSeconds == 0 {
		churn = "no churn run"
	}
	fmt.Fprintf(&b, "%s, %d CPUs, %s; load %s at start, %s at end. One agent against a real kube-apiserver; "+
		"the other Nodes are API objects shaped like a cloud provider's (31 labels, %d images, 12 conditions, "+
		"written by the kubelet, kube-controller-manager, node-problem-detector, the route controller and crosswire, "+
		"so with their managedFields) with a key, a /24 and an unanswered InternalIP. %d Node updates per size, "+
		"each moving an extra pod CIDR (one prefix added, one removed), on a quiet cluster and again during heartbeats; "+
		"%d heartbeats (kubelet and node-problem-detector status patches, %s, one kubelet patch in %d with new images) "+
		"after an idle window as long; %s.\n\n",
		r.Started.Format(time.RFC3339), r.Machine.CPUs, r.Machine.Go, r.Machine.LoadAtStart, r.Machine.LoadAtEnd,
		imagesPerNode, r.Config.Events, r.Config.Heartbeats, rate, r.Config.ImageChangeEach, churn)
	b.WriteString("| | target (5000) |")
	sep := "| --- | --- |"
	for _, s := range r.Sizes {
		fmt.Fprintf(&b, " %d nodes, %s peers |", s.Nodes, s.Peers)
		sep += " ---: |"
	}
	b.WriteString("\n" + sep + "\n")
	row := func(name, target string, f func(SizeResult) string) {
		fmt.Fprintf(&b, "| %s | %s |", name, target)
		for _, s := range r.Sizes {
			fmt.Fprintf(&b, " %s |", f(s))
		}
		b.WriteString("\n")
	}
	row("a Node as served (JSON), managedFields entries", "", func(s SizeResult) string {
		return fmt.Sprintf("%.1f KB, %d", float64(s.NodeBytes)/1000, s.NodeManagedFields)
	})
	row("agent start → datapath applied", "", func(s SizeResult) string { return fmt.Sprintf("%.0f ms", s.StartToAppliedMs) })
	row("agent start → Node cache synced", "", func(s SizeResult) string { return fmt.Sprintf("%.0f ms", s.StartToSyncedMs) })
	row("cache synced → datapath applied", "< 1000 ms", func(s SizeResult) string { return fmt.Sprintf("%.0f ms", s.SyncedToAppliedMs) })
	row("Node update → applied, p50", "", func(s SizeResult) string { return fmt.Sprintf("%.1f ms", s.EventP50Ms) })
	row("Node update → applied, p99", "< 50 ms", func(s SizeResult) string { return fmt.Sprintf("%.1f ms", s.EventP99Ms) })
	row("Node update → applied, max", "", func(s SizeResult) string { return fmt.Sprintf("%.1f ms", s.EventMaxMs) })
	row("agent's apply per update (nft + routes + WireGuard), mean", "", func(s SizeResult) string { return fmt.Sprintf("%.2f ms", s.ApplyMeanMs) })
	row("heartbeats: rate, count, load at start", "", func(s SizeResult) string {
		return fmt.Sprintf("%.0f/s, %d in %.0f s, load %s", s.HeartbeatRate, s.Heartbeats, s.HeartbeatSeconds, s.LoadAtHeartbeats)
	})
	row("agent CPU per heartbeat (above idle)", "", func(s SizeResult) string {
		return fmt.Sprintf("%.2f ms", s.CPUPerHeartbeatMs)
	})
	row("agent CPU: heartbeat window / idle window", "", func(s SizeResult) string {
		return fmt.Sprintf("%.0f / %.0f ms", s.HeartbeatCPUms, s.IdleCPUms)
	})
	row("datapath applies during the heartbeats", "0", func(s SizeResult) string { return fmt.Sprint(s.AppliesDuringHeartbeats) })
	row("RSS after the heartbeats", "< 100 MiB", func(s SizeResult) string { return fmt.Sprintf("%.1f MiB", s.RSSAfterHeartbeatsMiB) })
	row("Node update → applied during heartbeats, p50", "", func(s SizeResult) string { return fmt.Sprintf("%.1f ms", s.LoadedEventP50Ms) })
	row("Node update → applied during heartbeats, p99", "< 50 ms", func(s SizeResult) string { return fmt.Sprintf("%.1f ms", s.LoadedEventP99Ms) })
	row("Node add → applied, p50 (churn's adds)", "", func(s SizeResult) string { return fmt.Sprintf("%.1f ms", s.AddP50Ms) })
	row("Node add → applied, p99 (churn's adds)", "< 50 ms", func(s SizeResult) string { return fmt.Sprintf("%.1f ms", s.AddP99Ms) })
	row("RSS after sync", "< 100 MiB", func(s SizeResult) string { return fmt.Sprintf("%.1f MiB", s.RSSAfterSyncMiB) })
	row("RSS after the events", "< 100 MiB", func(s SizeResult) string { return fmt.Sprintf("%.1f MiB", s.RSSAfterEventsMiB) })
	row("churn: RSS first → last sample", "flat", func(s SizeResult) string {
		f, l := s.churnEnds()
		return fmt.Sprintf("%.1f → %.1f MiB", f.RSSMiB, l.RSSMiB)
	})
	row("churn: Go heap in use first → last", "flat", func(s SizeResult) string {
		f, l := s.churnEnds()
		return fmt.Sprintf("%.1f → %.1f MiB", f.HeapMiB, l.HeapMiB)
	})
	row("churn: goroutines first → last", "flat", func(s SizeResult) string {
		f, l := s.churnEnds()
		return fmt.Sprintf("%d → %d", f.Goroutines, l.Goroutines)
	})
	row("churn: adds+deletes, caught up after", "", func(s SizeResult) string {
		return fmt.Sprintf("%d, %.0f ms", s.ChurnOps, s.ChurnCatchUpMs)
	})
	row("creating the Nodes (admin client)", "", func(s SizeResult) string { return fmt.Sprintf("%.1f s", s.CreateSeconds) })
	b.WriteString("\n![scale](bench-scale.png)\n")
	return b.String()
}

func (s SizeResult) churnEnds() (Sample, Sample) {
	if len(s.ChurnSamples) == 0 {
		return Sample{}, Sample{}
	}
	return s.ChurnSamples[0], s.ChurnSamples[len(s.ChurnSamples)-1]
}

// renderReport reads a bench-scale.json and writes it, its Markdown and
// its plot into dir again (after the rendering changed).
func renderReport(path, dir string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(r.Sizes) == 0 {
		return fmt.Errorf("%s: no sizes", path)
	}
	return r.Write(dir)
}
