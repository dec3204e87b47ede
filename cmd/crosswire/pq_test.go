package main

import (
	"testing"
	"time"

	"github.com/crosswire/crosswire/pqpsk"
)

func TestPQOptionsValidate(t *testing.T) {
	o := defaultPQOptions()
	if m, err := o.validate(); err != nil || m != pqpsk.ModeOff {
		t.Fatalf("defaults: %v, %v", m, err)
	}
	for _, bad := range []pqOptions{
		{mode: "maybe", port: 51821, rotate: time.Minute},
		{mode: "on", port: 51821, rotate: time.Second},
		{mode: "required", port: 0, rotate: time.Minute},
	} {
		if _, err := bad.validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	good := pqOptions{mode: "required", port: 51821, rotate: 5 * time.Second}
	if m, err := good.validate(); err != nil || m != pqpsk.ModeRequired {
		t.Fatalf("%+v: %v, %v", good, m, err)
	}
}
