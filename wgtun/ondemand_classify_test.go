package wgtun

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// realMsgs are WireGuard messages of every type from a real exchange
// between two wireguard-go devices (in memory), the initiation and the
// cookie reply addressed to responder.
type realMsgs struct {
	responder  Key // public key
	initiation []byte
	response   []byte
	transport  [][]byte // data and keepalives
	cookie     []byte
}

// recordingBind records every datagram its device sends.
type recordingBind struct {
	conn.Bind
	mu   sync.Mutex
	sent [][]byte
}

func (b *recordingBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	b.mu.Lock()
	for _, buf := range bufs {
		b.sent = append(b.sent, bytes.Clone(buf))
	}
	b.mu.Unlock()
	return b.Bind.Send(bufs, ep)
}

// newRealMsgs has an initiator ping a responder through wireguard-go (a
// full handshake and a data packet each way), and keeps what they sent.
// The cookie reply, which wireguard-go sends only under load, is made by
// its own CookieChecker from the initiation.
func newRealMsgs(t testing.TB) *realMsgs {
	t.Helper()
	kR, _ := GeneratePrivateKey()
	kI, _ := GeneratePrivateKey()
	binds := bindtest.NewChannelBinds()
	rec := [2]*recordingBind{{Bind: binds[0]}, {Bind: binds[1]}}
	tuns := [2]*tuntest.ChannelTUN{tuntest.NewChannelTUN(), tuntest.NewChannelTUN()}
	cfgs := [2]string{
		// 0, the responder: its peer is the initiator, 1.0.0.2.
		fmt.Sprintf("private_key=%s\nlisten_port=0\npublic_key=%s\nendpoint=127.0.0.1:1\nallowed_ip=1.0.0.2/32\n", kR.hex(), kI.PublicKey().hex()),
		fmt.Sprintf("private_key=%s\nlisten_port=0\npublic_key=%s\nendpoint=127.0.0.1:2\nallowed_ip=1.0.0.1/32\n", kI.hex(), kR.PublicKey().hex()),
	}
	var devs [2]*device.Device
	for i := range devs {
		devs[i] = device.NewDevice(tuns[i].TUN(), rec[i], device.NewLogger(device.LogLevelSilent, ""))
		t.Cleanup(devs[i].Close)
		if err := devs[i].IpcSet(cfgs[i]); err != nil {
			t.Fatal(err)
		}
		if err := devs[i].Up(); err != nil {
			t.Fatal(err)
		}
	}
	r, i := netip.AddrFrom4([4]byte{1, 0, 0, 1}), netip.AddrFrom4([4]byte{1, 0, 0, 2})
	for _, dir := range []struct {
		from, to int
		src, dst netip.Addr
	}{{1, 0, i, r}, {0, 1, r, i}} {
		ping := tuntest.Ping(dir.dst, dir.src)
		tuns[dir.from].Outbound <- ping
		select {
		case got := <-tuns[dir.to].Inbound:
			if !bytes.Equal(got, ping) {
				t.Fatal("ping garbled in transit")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ping did not cross the in-memory tunnel")
		}
	}
	m := &realMsgs{responder: kR.PublicKey()}
	for _, b := range rec {
		b.mu.Lock()
		for _, msg := range b.sent {
			switch msg[0] {
			case device.MessageInitiationType:
				m.initiation = msg
			case device.MessageResponseType:
				m.response = msg
			case device.MessageTransportType:
				m.transport = append(m.transport, msg)
			}
		}
		b.mu.Unlock()
	}
	if m.initiation == nil || m.response == nil || len(m.transport) < 2 {
		t.Fatalf("exchange incomplete: initiation %d B, response %d B, %d transport", len(m.initiation), len(m.response), len(m.transport))
	}
	var cc device.CookieChecker
	cc.Init(device.NoisePublicKey(kR.PublicKey()))
	reply, err := cc.CreateReply(m.initiation, 7, []byte{127, 0, 0, 1, 0, 2})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, reply); err != nil {
		t.Fatal(err)
	}
	m.cookie = buf.Bytes()
	return m
}

// wgOracle is wireguard-go's own judgement of msg: the kind its receive
// path would parse it as (by type and the size its unmarshal accepts), and
// for initiations whether its cookie checker accepts mac1 for pub.
func wgOracle(msg []byte, cc *device.CookieChecker) (kind wgMsgKind, mac1 bool) {
	if len(msg) < 4 {
		return msgMalformed, false
	}
	switch binary.LittleEndian.Uint32(msg) {
	case device.MessageInitiationType:
		if len(msg) == device.MessageInitiationSize {
			return msgInitiation, cc.CheckMAC1(msg)
		}
	case device.MessageResponseType:
		if len(msg) == device.MessageResponseSize {
			return msgResponse, false
		}
	case device.MessageCookieReplyType:
		if len(msg) == device.MessageCookieReplySize {
			return msgCookieReply, false
		}
	case device.MessageTransportType:
		// wireguard-go reads any size from MessageTransportSize up; a
		// sender pads content to 16 bytes unless that passes its MTU.
		n := len(msg) - device.MessageTransportSize
		if n >= 0 && (n%16 == 0 || n >= minMTU) {
			return msgTransport, false
		}
	}
	return msgMalformed, false
}

func TestClassifyRealMessages(t *testing.T) {
	m := newRealMsgs(t)
	mac := newMAC1Checker(m.responder)
	h := mac.newMAC()
	check := func(name string, msg []byte, want wgMsgKind) {
		t.Helper()
		if got := classifyMsg(msg); got != want {
			t.Errorf("%s (%d B): kind %d, want %d", name, len(msg), got, want)
		}
	}
	check("initiation", m.initiation, msgInitiation)
	check("response", m.response, msgResponse)
	check("cookie reply", m.cookie, msgCookieReply)
	for _, tr := range m.transport {
		check("transport", tr, msgTransport)
	}
	if !mac.valid(h, m.initiation) {
		t.Error("real initiation's mac1 rejected")
	}
	other, _ := GeneratePrivateKey()
	if h2 := newMAC1Checker(other.PublicKey()); h2.valid(h2.newMAC(), m.initiation) {
		t.Error("mac1 accepted for another public key")
	}
	for i := range m.initiation {
		bad := bytes.Clone(m.initiation)
		bad[i] ^= 0x40
		if i >= 4 && i < len(bad)-macSize && mac.valid(h, bad) {
			t.Fatalf("mac1 still valid with byte %d flipped", i)
		}
	}

	// Truncated, extended, and re-typed versions of each are malformed.
	for _, msg := range [][]byte{m.initiation, m.response, m.cookie} {
		check("truncated", msg[:len(msg)-1], msgMalformed)
		check("extended", append(bytes.Clone(msg), 0), msgMalformed)
		bad := bytes.Clone(msg)
		bad[1] = 1 // type 0x100 + n
		check("reserved bytes set", bad, msgMalformed)
	}
	check("empty", nil, msgMalformed)
	check("type 0", make([]byte, 148), msgMalformed)
	check("type 5", append([]byte{5, 0, 0, 0}, make([]byte, 144)...), msgMalformed)
	tr := func(n int) []byte { return append([]byte{4, 0, 0, 0}, make([]byte, n-4)...) }
	check("keepalive", tr(32), msgTransport)
	check("short transport", tr(31), msgMalformed)
	check("unaligned small transport", tr(32+17), msgMalformed)
	check("MTU-capped transport (1420)", tr(32+1420), msgTransport)
}

// FuzzClassify: the classifier agrees with wireguard-go's own parsing and
// mac1 check on any input, and never panics.
func FuzzClassify(f *testing.F) {
	m := newRealMsgs(f)
	for _, msg := range append([][]byte{m.initiation, m.response, m.cookie, nil, {1}, {4, 0, 0, 0},
		[]byte("crosswire junk"), m.initiation[:100]}, m.transport...) {
		f.Add(msg)
	}
	mac := newMAC1Checker(m.responder)
	h := mac.newMAC()
	var cc device.CookieChecker
	cc.Init(device.NoisePublicKey(m.responder))
	f.Fuzz(func(t *testing.T, msg []byte) {
		kind := classifyMsg(msg)
		wantKind, wantMAC := wgOracle(msg, &cc)
		if kind != wantKind {
			t.Fatalf("%x: kind %d, wireguard-go reads %d", msg, kind, wantKind)
		}
		if kind == msgInitiation {
			if got := mac.valid(h, msg); got != wantMAC {
				t.Fatalf("%x: mac1 valid %t, wireguard-go says %t", msg, got, wantMAC)
			}
		}
	})
}
