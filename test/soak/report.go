package soak

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// KindStats sums up one kind of fault over a run.
type KindStats struct {
	Kind                     Kind
	Count, Over              int
	HealP50, HealMax         time.Duration
	BlackoutP50, BlackoutMax time.Duration
	BlackoutN                int // faults whose blackout could be measured
	// Plaintext counts leaks only this fault's window explains; Shared
	// those it explains together with other faults running then.
	Plaintext, Shared int
}

// Summarize groups results by kind, in Kinds order, each with the leaks
// it is a suspect of (see suspects), alone or with others. Leaks that no
// fault explains are counted apart.
func Summarize(results []Result, leaks []Leak) (stats []KindStats, unattributed int) {
	byKind := map[string][]Result{}
	for _, r := range results {
		byKind[r.Fault.Kind.Name] = append(byKind[r.Fault.Kind.Name], r)
	}
	sole, shared := map[string]int{}, map[string]int{}
	for _, l := range leaks {
		sus := suspects(results, l)
		switch len(sus) {
		case 0:
			unattributed++
		case 1:
			sole[sus[0].Fault.Kind.Name]++
		default:
			kinds := map[string]bool{}
			for _, r := range sus {
				kinds[r.Fault.Kind.Name] = true
			}
			for k := range kinds {
				shared[k]++
			}
		}
	}
	for _, k := range Kinds {
		rs := byKind[k.Name]
		s := KindStats{Kind: k, Count: len(rs), Plaintext: sole[k.Name], Shared: shared[k.Name]}
		var heals, blackouts []time.Duration
		for _, r := range rs {
			heals = append(heals, r.Heal)
			if r.Blackout >= 0 {
				blackouts = append(blackouts, r.Blackout)
			}
			if r.Over {
				s.Over++
			}
		}
		s.HealP50, s.HealMax = p50max(heals)
		s.BlackoutP50, s.BlackoutMax = p50max(blackouts)
		s.BlackoutN = len(blackouts)
		stats = append(stats, s)
	}
	return stats, unattributed
}

func p50max(ds []time.Duration) (p50, maxD time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2], s[len(s)-1]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// WriteFaultTable prints the per-kind table in Markdown.
func WriteFaultTable(w io.Writer, stats []KindStats) {
	fmt.Fprintln(w, "| fault | times | heal p50 | heal max | bound | over bound | blackout p50 | blackout max | plaintext (alone, +shared) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range stats {
		if s.Count == 0 {
			fmt.Fprintf(w, "| %s | 0 | | | %s | | | | |\n", s.Kind.Name, secs(s.Kind.Bound))
			continue
		}
		bp50, bmax := secs(s.BlackoutP50), secs(s.BlackoutMax)
		switch {
		case s.Kind.Target == targetNone:
			bp50, bmax = "none", "none" // no pod flow depends on it
		case s.BlackoutN == 0:
			bp50, bmax = "n/a", "n/a"
		case s.BlackoutN < s.Count:
			bmax += fmt.Sprintf(" (%d of %d)", s.BlackoutN, s.Count)
		}
		pt := fmt.Sprint(s.Plaintext)
		if s.Shared > 0 {
			pt += fmt.Sprintf(" (+%d shared)", s.Shared)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %d | %s | %s | %s |\n", s.Kind.Name, s.Count,
			secs(s.HealP50), secs(s.HealMax), secs(s.Kind.Bound), s.Over, bp50, bmax, pt)
	}
}

// FlowStats sums up the flows of one kind over the whole run.
type FlowStats struct {
	Kind           string
	Flows, Answers int
	GapP50, GapMax time.Duration // each flow's longest gap
	Resets         int
}

// SummarizeFlows groups flows by kind; each flow's longest gap between
// from and to is one sample.
func SummarizeFlows(flows []*Flow, from, to time.Time, gap func([]time.Time, time.Time, time.Time) time.Duration) []FlowStats {
	by := map[string]*FlowStats{}
	gaps := map[string][]time.Duration{}
	for _, f := range flows {
		s := by[f.Kind]
		if s == nil {
			s = &FlowStats{Kind: f.Kind}
			by[f.Kind] = s
		}
		a := f.Answers()
		s.Flows++
		s.Answers += len(a)
		s.Resets += f.ResetCount()
		lo, hi := f.Life()
		gaps[f.Kind] = append(gaps[f.Kind], gap(a, later(from, lo), earlier(to, hi)))
	}
	var out []FlowStats
	for k, s := range by {
		s.GapP50, s.GapMax = p50max(gaps[k])
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// WriteFlowTable prints the per-flow-kind table in Markdown.
func WriteFlowTable(w io.Writer, stats []FlowStats) {
	fmt.Fprintln(w, "| flows | count | answers | longest gap p50 | longest gap max | TCP re-dials |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range stats {
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %d |\n", s.Kind, s.Flows, s.Answers, secs(s.GapP50), secs(s.GapMax), s.Resets)
	}
}

// WriteUsageTable prints each agent's size at the start and the end.
func WriteUsageTable(w io.Writer, names []string, start, end map[string]Usage, note map[string]string) {
	fmt.Fprintln(w, "| agent | goroutines start → end | RSS start → end | heap in use start → end | |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | --- |")
	for _, n := range names {
		s, e := start[n], end[n]
		fmt.Fprintf(w, "| %s | %.0f → %.0f | %.1f → %.1f MiB | %.1f → %.1f MiB | %s |\n", n, s.Goroutines, e.Goroutines,
			s.RSS/(1<<20), e.RSS/(1<<20), s.HeapInuse/(1<<20), e.HeapInuse/(1<<20), note[n])
	}
}

// Growth reports whether an agent grew beyond warm-up: more than 10
// goroutines from start to end, or RSS or heap in use up by more than a
// fifth over the second half of the run (mid to end). wireguard-go's
// buffer pools (64 KiB per buffer) grow to the largest burst the agent has
// queued, which the first faults set, so start to end alone would read
// warm-up as a leak; a leak keeps growing in the second half too. With
// memory false only goroutines are judged: in a run of a minute the pools
// are still filling in the second half and a heap sample lands anywhere
// between two collections, so memory says nothing about a leak there.
func Growth(start, mid, end Usage, memory bool) string {
	var why []string
	if end.Goroutines > start.Goroutines+10 {
		why = append(why, fmt.Sprintf("goroutines %.0f -> %.0f", start.Goroutines, end.Goroutines))
	}
	if !memory {
		return strings.Join(why, ", ")
	}
	if end.RSS > mid.RSS*1.2 {
		why = append(why, fmt.Sprintf("RSS %.1f -> %.1f MiB over the second half", mid.RSS/(1<<20), end.RSS/(1<<20)))
	}
	if end.HeapInuse > mid.HeapInuse*1.2 {
		why = append(why, fmt.Sprintf("heap in use %.1f -> %.1f MiB over the second half", mid.HeapInuse/(1<<20), end.HeapInuse/(1<<20)))
	}
	return strings.Join(why, ", ")
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// WriteLeakTimeline lists plaintext packets by second of the run, each
// second with its count, an example and the faults running then.
func WriteLeakTimeline(w io.Writer, leaks []Leak, results []Result, start time.Time) {
	if len(leaks) == 0 {
		return
	}
	fmt.Fprintln(w, "plaintext on the underlay, by second of the run:")
	type bin struct {
		n    int
		what string
	}
	bins := map[int]*bin{}
	var secsList []int
	for _, l := range leaks {
		s := int(l.At.Sub(start).Seconds())
		b := bins[s]
		if b == nil {
			b = &bin{what: l.What}
			bins[s] = b
			secsList = append(secsList, s)
		}
		b.n++
	}
	sort.Ints(secsList)
	for i, s := range secsList {
		if i == 30 {
			fmt.Fprintf(w, "  ... %d more seconds\n", len(secsList)-i)
			break
		}
		at := start.Add(time.Duration(s) * time.Second)
		var running []string
		for _, r := range results {
			if !at.Add(time.Second).Before(r.Injected) && !at.After(r.Healed.Add(500*time.Millisecond)) {
				running = append(running, fmt.Sprintf("#%d %s", r.Fault.Seq, describe(r.Fault)))
			}
		}
		fmt.Fprintf(w, "  +%ds: %d packets, e.g. %s; faults: %s\n", s, bins[s].n, bins[s].what, strings.Join(running, "; "))
	}
}

// suspects lists the faults a leak may be laid at: those whose window
// (injection to heal + 0.5 s) holds it and that held the node of either
// pod, or, when no such fault ran, the cluster-wide ones running then.
func suspects(results []Result, l Leak) []*Result {
	var nodeFaults, wide []*Result
	for i := range results {
		r := &results[i]
		if l.At.Before(r.Injected) || l.At.After(r.Healed.Add(500*time.Millisecond)) {
			continue
		}
		switch {
		case len(r.Fault.Nodes()) == 0:
			wide = append(wide, r)
		case holds(r.Fault, l.Src) || holds(r.Fault, l.Dst):
			nodeFaults = append(nodeFaults, r)
		}
	}
	if len(nodeFaults) > 0 {
		return nodeFaults
	}
	return wide
}

// holds reports whether f holds node i.
func holds(f Fault, i int) bool {
	for _, n := range f.Nodes() {
		if n == i {
			return true
		}
	}
	return false
}
