package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/crosswire/crosswire/pqpsk"
	"github.com/crosswire/crosswire/proxy"
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

type nopTransport struct{}

func (nopTransport) Send(netip.AddrPort, []byte) error { return nil }

type nopInstaller struct{}

func (nopInstaller) SetPresharedKey(_, _ pqpsk.Key) error   { return nil }
func (nopInstaller) FailClosed(pqpsk.Key) error             { return nil }
func (nopInstaller) ResetPeer(_, _ pqpsk.Key, _ bool) error { return nil }
func (nopInstaller) ForgetPresharedKey(pqpsk.Key)           {}

// TestPQAgentFollowsChanges: the controller's full states and changes
// reach the key manager: a re-keyed node's old key is forgotten, a node
// with the annotation is a PQ peer at its endpoint's address.
func TestPQAgentFollowsChanges(t *testing.T) {
	m, err := pqpsk.New(pqpsk.Config{Mode: pqpsk.ModeOn, PrivateKey: pqpsk.Key(sampleKey(1))}, nopTransport{}, nopInstaller{})
	if err != nil {
		t.Fatal(err)
	}
	a := &pqAgent{m: m}
	peer := func(name string, key byte, pqPort uint16) proxy.Peer {
		return proxy.Peer{Name: name, PublicKey: sampleKey(key), Endpoint: netip.MustParseAddrPort("192.168.77.9:51820"), PQPort: pqPort}
	}
	states := func() map[pqpsk.Key]pqpsk.State {
		out := map[pqpsk.Key]pqpsk.State{}
		for _, s := range m.Status() {
			out[s.Key] = s.State
		}
		return out
	}
	a.replace([]proxy.Peer{peer("n2", 2, 51821), peer("n3", 3, 0), {Name: "keyless"}})
	if got := states(); len(got) != 2 || got[pqpsk.Key(sampleKey(2))] != pqpsk.StatePending || got[pqpsk.Key(sampleKey(3))] != pqpsk.StateClassical {
		t.Fatalf("after replace: %v", got)
	}
	a.apply([]proxy.Peer{peer("n2", 4, 51821)}, []string{"n3"}) // n2 re-keyed, n3 gone
	got := states()
	if len(got) != 1 || got[pqpsk.Key(sampleKey(4))] != pqpsk.StatePending {
		t.Fatalf("after apply: %v", got)
	}
}
