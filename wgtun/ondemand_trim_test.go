package wgtun

import (
	"testing"
	"time"
)

var timeZero = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestPeerIdle(t *testing.T) {
	const idle = time.Minute
	now := timeZero.Add(time.Hour)
	long, recent := now.Add(-2*idle), now.Add(-idle/2)
	for _, tc := range []struct {
		name                 string
		activated, handshake time.Time
		prevRx, prevTx       uint64
		rx, tx               uint64
		want                 bool
	}{
		{"idle, never handshook", long, time.Time{}, 5, 7, 5, 7, true},
		{"idle, old handshake", long, long, 5, 7, 5, 7, true},
		{"activated exactly idle ago", now.Add(-idle), time.Time{}, 0, 0, 0, 0, true},
		{"activated recently", recent, time.Time{}, 0, 0, 0, 0, false},
		{"handshake recent", long, recent, 5, 7, 5, 7, false},
		{"received since last check", long, long, 5, 7, 6, 7, false},
		{"sent since last check", long, long, 5, 7, 5, 8, false},
		{"counters reset (re-created peer)", long, long, 5, 7, 0, 0, false},
	} {
		if got := peerIdle(now, tc.activated, tc.handshake, tc.prevRx, tc.prevTx, tc.rx, tc.tx, idle); got != tc.want {
			t.Errorf("%s: idle %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestTrimInterval(t *testing.T) {
	for idle, want := range map[time.Duration]time.Duration{
		2 * time.Second:  500 * time.Millisecond,
		time.Minute:      15 * time.Second,
		5 * time.Minute:  30 * time.Second,
		10 * time.Minute: 30 * time.Second,
	} {
		if got := trimInterval(idle); got != want {
			t.Errorf("trimInterval(%v) = %v, want %v", idle, got, want)
		}
	}
}
