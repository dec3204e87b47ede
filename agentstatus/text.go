package agentstatus

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crosswire/crosswire/wgtun"
)

// WriteText renders r for people: a header in the style of `wg show`, then
// a peer table in the style of `kubectl get`. Ages are relative to r.Time.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	health := "healthy"
	if !r.Healthy {
		health = "UNHEALTHY"
	}
	fmt.Fprintf(&b, "node: %s  (%s)\n", r.Node, health)
	fmt.Fprintf(&b, "interface: %s\n", r.Interface)
	fmt.Fprintf(&b, "  public key: %s\n", r.PublicKey)
	fmt.Fprintf(&b, "  listen port: %d\n", r.ListenPort)
	fmt.Fprintf(&b, "  mtu: %d\n", r.MTU)
	fmt.Fprintf(&b, "  strict: %t\n", r.Strict)
	mode := "every node"
	if r.OnDemandPeers {
		mode = "on demand"
	}
	fmt.Fprintf(&b, "  wireguard peers configured: %d (%s)\n", r.PeersConfigured, mode)
	if r.ActivationsRefused != nil {
		var parts []string
		for _, reason := range wgtun.RefusalReasons {
			parts = append(parts, fmt.Sprintf("%s %d", reason, r.ActivationsRefused[reason]))
		}
		fmt.Fprintf(&b, "  activations refused: %s\n", strings.Join(parts, ", "))
	}

	d := r.Datapath
	b.WriteString("datapath:\n")
	switch {
	case !d.Known:
		b.WriteString("  last apply: none (waiting for the node source)\n")
	case d.LastApply == nil:
		b.WriteString("  last apply: none yet\n")
	default:
		result := "ok"
		if !d.Applied {
			result = "FAILED: " + d.LastError
		}
		fmt.Fprintf(&b, "  last apply: %s, %s ago, took %s\n", result, age(r.Time.Sub(*d.LastApply)), roundDuration(d.LastDurationSec))
	}
	fmt.Fprintf(&b, "  applies: %d, errors: %d, drift repairs: %d\n", d.Applies, d.Errors, d.DriftRepairs)
	for _, rep := range d.LastRepairs {
		fmt.Fprintf(&b, "  last repair: %s\n", rep)
	}
	fmt.Fprintf(&b, "  nft sets: local4 %d, local6 %d, remote4 %d, remote6 %d\n",
		r.Sets["local4"], r.Sets["local6"], r.Sets["remote4"], r.Sets["remote6"])
	fmt.Fprintf(&b, "  marked packets: egress4 %d, egress6 %d, tunnel ingress %d\n",
		r.MarkCounters["egress4"], r.MarkCounters["egress6"], r.MarkCounters["tunnel_ingress"])
	fmt.Fprintf(&b, "  dropped packets: leak guard %d, guard table %d, strict ingress %d, strict cluster %d\n",
		r.DropCounters["leak_guard"], r.DropCounters["guard_table"], r.DropCounters["strict_ingress"], r.DropCounters["strict_cluster"])
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "  read error: %s\n", e)
	}
	b.WriteString("\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tENDPOINT\tPOD CIDRS\tHANDSHAKE\tRX\tTX\tSTATE")
	for _, p := range r.Peers {
		hs := "never"
		if p.HandshakeAgeSeconds != nil {
			hs = age(time.Duration(*p.HandshakeAgeSeconds*float64(time.Second))) + " ago"
		}
		state := p.State
		if p.Reason != "" {
			state += ": " + p.Reason
		}
		rx, tx := byteCount(p.RxBytes), byteCount(p.TxBytes)
		if p.State == StateRejected || p.State == StateWaitingForKey {
			hs, rx, tx = "-", "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, dash(p.Endpoint), dash(strings.Join(p.PodCIDRs, ",")), hs, rx, tx, state)
	}
	if len(r.Peers) == 0 {
		fmt.Fprintln(tw, "(no peers)\t\t\t\t\t\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := writePQText(&b, r); err != nil {
		return err
	}
	if len(r.Problems) > 0 {
		b.WriteString("\nproblems:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age renders a non-negative duration to the second, like kubectl: 42s,
// 3m5s, 2h3m, 4d5h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
}

func roundDuration(sec float64) time.Duration {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// byteCount renders a byte count like wg show: 0 B, 812 B, 1.50 KiB, 3.02 MiB.
func byteCount(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit || u == "TiB" {
			return fmt.Sprintf("%.2f %s", v, u)
		}
	}
	return ""
}
