package wgtun

import (
	"testing"

	"golang.zx2c4.com/wireguard/tun"
)

type fakeTUN struct {
	tun.Device // nil: only Events is used
	ev         chan tun.Event
}

func (f *fakeTUN) Events() <-chan tun.Event { return f.ev }

func TestNSTUNDropsUpDownEvents(t *testing.T) {
	f := &fakeTUN{ev: make(chan tun.Event, 8)}
	w := newNSTUN(f, nil, 0)
	f.ev <- tun.EventUp
	f.ev <- tun.EventDown
	f.ev <- tun.EventUp | tun.EventMTUUpdate
	f.ev <- tun.EventMTUUpdate
	close(f.ev)

	var got []tun.Event
	for ev := range w.Events() { // must end: closed when the inner channel is
		got = append(got, ev)
	}
	if len(got) != 2 || got[0] != tun.EventMTUUpdate || got[1] != tun.EventMTUUpdate {
		t.Fatalf("forwarded events %v, want two EventMTUUpdate only", got)
	}
}
