// Command bench measures crosswire's datapath against plaintext routing and
// against the stock wireguard-go binary configured by hand, on a 2-node
// namespace cluster (test/netcluster), pod to pod across nodes:
//
//	plaintext  host-gw routes as built: the ceiling
//	reference  wireguard-go (the version crosswire links) per node, set up
//	           with `wg set` and a pod-CIDR route, as an operator would
//	crosswire  crosswire agents (file mode)
//
// The modes are interleaved round by round, in a rotating order, on the
// same cluster, cleaned up and checked clean in between, because the
// machine is shared and noisy; medians and min–max over the rounds are
// reported. Per mode and round: iperf3 TCP with 1 and 4 streams (Gbit/s,
// and CPU seconds per GB: the tunnel process on each node plus machine-wide
// softirq), and ping RTT p50/p99 idle and during the 1-stream transfer.
//
//	make bench   (or: go run ./test/bench -rounds 3 -time 5s -out results)
//
// Results: <out>/bench-datapath.json (every round's raw figures, summaries,
// ratios, machine info), <out>/bench-datapath.md and <out>/bench-datapath.png
// (throughput and CPU per GB per mode). Needs root, iperf3, wg, ping, and
// the reference binary built by test/tools/build.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	cfg := defaultConfig()
	flag.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds; every round runs every mode once (≥ 3 for medians worth reading)")
	flag.DurationVar(&cfg.Duration, "time", cfg.Duration, "iperf3 duration of each measurement")
	flag.IntVar(&cfg.Pings, "pings", cfg.Pings, "pings per RTT measurement (10 ms apart)")
	flag.StringVar(&cfg.Bin, "bin", "", "crosswire binary (default: built from this module into a temp dir)")
	flag.StringVar(&cfg.WireGuardGo, "wireguard-go", cfg.WireGuardGo, "reference wireguard-go binary (built by test/tools/build.sh)")
	flag.StringVar(&cfg.Out, "out", "results", "directory for bench-datapath.json, .md and .png")
	flag.BoolVar(&cfg.UnderlayGRO, "underlay-gro", false, "turn GRO on on the underlay veths (needs ethtool)")
	flag.BoolVar(&cfg.ReferenceRule, "reference-rule", false, "give the reference mode crosswire's (unused) fwmark policy rule, to measure what the rule alone costs")
	render := flag.String("render", "", "only re-render this bench-datapath.json (summaries, ratios, Markdown, PNG) into -out")
	flag.Parse()

	if *render != "" {
		if err := rerender(*render, cfg.Out); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rep, err := Run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if err := rep.Write(cfg.Out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Printf("\n%s\nbench: wrote %s/bench-datapath.json, .md and .png in %v\n", rep.Markdown(), cfg.Out, time.Since(start).Round(time.Second))
}

// rerender recomputes a past run's summaries and tables from its raw
// samples, e.g. after the report format changed.
func rerender(path, out string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	rep.Config.Duration = time.Duration(rep.Config.Seconds * float64(time.Second))
	rep.summarize()
	fmt.Print(rep.Markdown())
	return rep.Write(out)
}
