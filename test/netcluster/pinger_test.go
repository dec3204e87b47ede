package netcluster

import (
	"testing"
	"time"
)

// LossBetween counts the probes of a window by sequence number: the ones
// after the last answer before it, up to the first answer after it.
func TestPingerLossBetween(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Probes every 20 ms, seq 1 at 0 ms; 6..10 lost (a 100 ms blackout),
	// 13 answered late (after 14), 16 lost, 19..20 sent, never answered.
	p := &Pinger{Sent: 20}
	for _, s := range []int{1, 2, 3, 4, 5, 11, 12, 14, 13, 15, 17, 18} {
		ms := (s - 1) * 20
		if s == 13 {
			ms = 14*20 + 5
		}
		p.Replies = append(p.Replies, at(ms))
		p.Seqs = append(p.Seqs, s)
	}
	for _, c := range []struct {
		name     string
		from, to time.Time
		want     Loss
	}{
		{"the blackout", at(90), at(190), Loss{Probes: 5, Lost: 5, LongestRun: 5}},
		{"before it", at(0), at(70), Loss{Probes: 4, Lost: 0, LongestRun: 0}},
		{"a late reply is an answer", at(230), at(290), Loss{Probes: 3, Lost: 0, LongestRun: 0}},
		{"one lost among answers", at(290), at(330), Loss{Probes: 2, Lost: 1, LongestRun: 1}},
		{"to the end", at(330), at(1000), Loss{Probes: 3, Lost: 2, LongestRun: 2}},
		{"everything", at(-10), at(1000), Loss{Probes: 20, Lost: 8, LongestRun: 5}},
	} {
		if got := p.LossBetween(c.from, c.to); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
