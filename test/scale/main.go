// Command scale measures crosswire's control plane against a real etcd +
// kube-apiserver holding 100, 1000 and 5000 Node objects: one agent in one
// node namespace, every other Node an API object only (a random valid key,
// its own /24 pod CIDR, an InternalIP nothing answers), so the agent
// programs an nft set element, a route and a WireGuard peer for each, as
// it would in a cluster of that size. The Nodes are shaped like a cloud
// provider's (labels, images, conditions: 20 KB) and written by the
// kubelet's, node-problem-detector's and the other writers' field
// managers (shape.go, nodes.go). Per size and peer mode:
//
//	sync        agent start -> datapath applied (remote4 holds N-1
//	            prefixes and the device N-1 peers), and Node cache synced ->
//	            applied (from the agent's log)
//	events      Node update (one more pod CIDR) -> set element present, as
//	            p50/p99/max over -events updates, seen through an nftables
//	            monitor (no polling load on the agent)
//	apply cost  the agent's own incremental apply duration (Prometheus
//	            histogram sum/count over the event run)
//	heartbeats  kubelet and node-problem-detector status updates at
//	            -heartbeat-rate (heartbeat.go): the agent's CPU per
//	            heartbeat above idle, its datapath applies (none are
//	            needed) and RSS; then the events again during heartbeats
//	memory      agent RSS after sync, after the events, after the
//	            heartbeats, and at the start and end of a churn run (Nodes
//	            added and deleted at -churn-rate for -churn), with the
//	            goroutine count from /metrics
//
//	make scale   (or: go run ./test/scale -sizes 100,1000,5000 -out results)
//
// Results: <out>/bench-scale.json, <out>/bench-scale.md and
// <out>/bench-scale.png (latencies, RSS and CPU per heartbeat per size;
// -render re-renders the last two from the JSON). Needs root and the
// kube-apiserver/etcd built by test/tools/build.sh. Figures are
// measurements, never asserted (the smoke test only checks they exist,
// that the Nodes are real-shaped and that heartbeats cause no apply).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	cfg := defaultConfig()
	sizes := flag.String("sizes", "100,1000,5000", "comma-separated Node counts (including the agent's own)")
	modes := flag.String("modes", strings.Join(cfg.Modes, ","), "comma-separated peer modes: all (every Node a WireGuard peer), on-demand (--on-demand-peers)")
	flag.IntVar(&cfg.Events, "events", cfg.Events, "Node updates timed per size")
	flag.DurationVar(&cfg.Churn, "churn", cfg.Churn, "duration of the add/delete churn run per size (0 skips it)")
	flag.Float64Var(&cfg.ChurnRate, "churn-rate", cfg.ChurnRate, "Node adds plus deletes per second during churn")
	flag.IntVar(&cfg.Heartbeats, "heartbeats", cfg.Heartbeats, "kubelet and node-problem-detector status updates in the timed heartbeat window, at most as many as fit in -heartbeat-window (0 skips the heartbeat run)")
	flag.DurationVar(&cfg.MaxHeartbeatWindow, "heartbeat-window", cfg.MaxHeartbeatWindow, "longest heartbeat window (an idle window as long comes before it)")
	flag.Float64Var(&cfg.HeartbeatRate, "heartbeat-rate", cfg.HeartbeatRate, "heartbeats per second across the cluster (0: one per node every 100 s)")
	flag.DurationVar(&cfg.Settle, "settle", cfg.Settle, "with every node a peer, time after the sync before the heartbeat run (wireguard-go's start-up handshakes end after 90 s)")
	flag.BoolVar(&cfg.Profile, "profile", false, "save the agent's CPU profile over the event run and its heap profile after it (scale-<n>-<mode>-cpu.pprof, -heap.pprof in -out), and a CPU profile of the heartbeat window (-heartbeat-cpu.pprof)")
	flag.StringVar(&cfg.Bin, "bin", "bin/crosswire", "crosswire binary")
	flag.StringVar(&cfg.Out, "out", "results", "directory for bench-scale.json, .md and .png")
	render := flag.String("render", "", "only re-render bench-scale.md and .png from this bench-scale.json into -out (measures nothing)")
	flag.Parse()
	if *render != "" {
		if err := renderReport(*render, cfg.Out); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(1)
		}
		return
	}
	cfg.Sizes = nil
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			fmt.Fprintf(os.Stderr, "scale: bad size %q\n", s)
			os.Exit(2)
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}

	cfg.Modes = nil
	for _, m := range strings.Split(*modes, ",") {
		if m = strings.TrimSpace(m); m != ModeAll && m != ModeOnDemand {
			fmt.Fprintf(os.Stderr, "scale: bad mode %q (all or on-demand)\n", m)
			os.Exit(2)
		}
		cfg.Modes = append(cfg.Modes, m)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rep, err := Run(ctx, cfg, os.Stdout)
	if rep != nil && len(rep.Sizes) > 0 {
		if werr := rep.Write(cfg.Out); werr != nil {
			fmt.Fprintln(os.Stderr, "scale:", werr)
			os.Exit(1)
		}
		fmt.Printf("\n%s\nscale: wrote %s/bench-scale.json, .md and .png in %v\n", rep.Markdown(), cfg.Out, time.Since(start).Round(time.Second))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}
