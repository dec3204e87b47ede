package soak

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxConcurrent caps how many faults run at once: overlaps happen (on
// different nodes, or a datapath fault during an API outage), but the
// cluster keeps nodes untouched to measure the heals against.
const maxConcurrent = 4

// lookahead is how far past a blocked fault the runner looks for one it
// can start meanwhile.
const lookahead = 6

// RunSchedule starts the plan's faults in order, each after its gap and
// once nothing running conflicts with it (while one waits, a later one
// that does not conflict with it may go first), until d has passed;
// then it waits for the running ones and returns every result in start
// order.
func (r *Run) RunSchedule(ctx context.Context, plan []Fault, d time.Duration) []Result {
	start := time.Now()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[int]Result{}
	)
	launch := func(f Fault) {
		r.Log("%6.1fs fault #%d %s", time.Since(start).Seconds(), f.Seq, describe(f))
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A harness bug must fail the run, not kill the test binary
			// before its cleanups remove the cluster.
			defer func() {
				if p := recover(); p != nil {
					r.release(f)
					mu.Lock()
					results[f.Seq] = Result{Fault: f, Injected: time.Now(), Healed: time.Now(), Over: true, Blackout: -1,
						Err: fmt.Errorf("panic: %v\n%s", p, debug.Stack())}
					mu.Unlock()
				}
			}()
			res := r.Execute(ctx, f)
			r.release(f)
			mu.Lock()
			results[f.Seq] = res
			mu.Unlock()
			verdict := "ok"
			if res.Over {
				verdict = "OVER BOUND"
			}
			errText := ""
			if res.Err != nil {
				errText = ": " + res.Err.Error()
			}
			r.Log("%6.1fs fault #%d %s healed in %v (bound %v, blackout %v) %s%s", time.Since(start).Seconds(), f.Seq, f.Kind.Name,
				res.Heal.Round(time.Millisecond), f.Kind.Bound, res.Blackout.Round(time.Millisecond), verdict, errText)
		}()
	}
	queue := slices.Clone(plan)
	for len(queue) > 0 {
		time.Sleep(queue[0].Gap)
		for launched := false; !launched; {
			if time.Since(start) >= d || ctx.Err() != nil {
				queue = nil
				break
			}
			// The head of the queue, or one of the next few that leaves
			// the head's nodes and API server alone, so a fault waiting
			// for a long heal (an API outage) does not stall the rest
			// and is not starved either.
			for i := 0; i < len(queue) && i <= lookahead; i++ {
				if i > 0 && queue[i].conflicts(queue[0]) {
					continue
				}
				if r.claim(queue[i]) {
					launch(queue[i])
					queue = slices.Delete(queue, i, i+1)
					launched = true
					break
				}
			}
			if !launched {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	wg.Wait()
	var out []Result
	seqs := mapsKeys(results)
	slices.Sort(seqs)
	for _, seq := range seqs {
		out = append(out, results[seq])
	}
	return out
}

// claim marks f running if nothing running conflicts with it and there is
// room.
func (r *Run) claim(f Fault) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.running) >= maxConcurrent {
		return false
	}
	for _, g := range r.running {
		if f.conflicts(g.f) {
			return false
		}
	}
	r.running[f.Seq] = claim{f: f, since: time.Now()}
	return true
}

func (r *Run) release(f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.running[f.Seq]; ok {
		c.until = time.Now()
		r.history = append(r.history, c)
		delete(r.running, f.Seq)
	}
}

func describe(f Fault) string {
	var b strings.Builder
	b.WriteString(f.Kind.Name)
	switch {
	case f.Peer != 0:
		fmt.Fprintf(&b, " on node%d (peer node%d)", f.Node, f.Peer)
	case f.Node != 0:
		fmt.Fprintf(&b, " on node%d", f.Node)
	}
	if f.Hold > 0 {
		fmt.Fprintf(&b, " for %v", f.Hold)
	}
	return b.String()
}

func mapsKeys[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// blackout is the longest gap of the fault's ping flows from its
// injection to its heal, leaving out flows that touch a node another
// fault held at some time in that window: their gaps are that fault's.
// -1 when no flow was left to measure.
func (r *Run) blackout(res Result) time.Duration {
	other := map[int]bool{}
	r.mu.Lock()
	claims := append([]claim(nil), r.history...)
	for _, c := range r.running {
		claims = append(claims, c)
	}
	r.mu.Unlock()
	for _, c := range claims {
		until := c.until
		if until.IsZero() {
			until = time.Now()
		}
		// Windows that merely touch (one fault released as the next
		// began) do not count.
		if c.f.Seq == res.Fault.Seq || until.Before(res.Injected.Add(overlapSlack)) || c.since.After(res.Healed.Add(-overlapSlack)) {
			continue
		}
		for _, i := range c.f.Nodes() {
			other[i] = true
		}
	}
	longest, measured := time.Duration(0), false
	for _, fl := range r.affected(res.Fault) {
		if other[fl.Src] || other[fl.Dst] {
			continue
		}
		lo, hi := fl.Life()
		longest = max(longest, clippedGap(fl.Answers(), later(res.Injected, lo), earlier(res.Healed, hi)))
		measured = true
	}
	if !measured {
		return -1 // every flow it touched was another fault's too
	}
	return longest
}

const overlapSlack = 500 * time.Millisecond

// clippedGap is the longest stretch without answers inside [from, to]: a
// silence that began before from counts only from from, so a fault is not
// charged with a gap that an earlier one opened.
func clippedGap(answers []time.Time, from, to time.Time) time.Duration {
	var longest time.Duration
	prev := from
	for _, a := range answers {
		if a.Before(from) {
			continue
		}
		if a.After(to) {
			break
		}
		longest = max(longest, a.Sub(prev))
		prev = a
	}
	return max(longest, to.Sub(prev))
}
