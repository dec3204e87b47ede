package pqpsk

import (
	"bytes"
	"testing"
	"time"
)

// recordExchange returns the wire messages of a few real exchanges, as
// seeds.
func recordExchange(t testing.TB) [][]byte {
	c := newCluster(t, 2)
	var out [][]byte
	c.net.filter = func(p packet) []packet {
		out = append(out, append([]byte(nil), p.b...))
		return []packet{p}
	}
	c.run(testRotate + 5*time.Second)
	return out
}

// FuzzParse: the parser never panics, accepts only messages of the exact
// size of their type with a zero reserved field, and what it accepts, a
// manager that knows the sender handles without panicking.
func FuzzParse(f *testing.F) {
	for _, b := range recordExchange(f) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	c := newCluster(f, 2)
	c.step(TickInterval)
	target := c.nodes[0].m
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if m != nil {
				t.Fatal("a message and an error")
			}
			return
		}
		if len(b) != sizeOf(m.Type) || b[1] != Version || b[2]|b[3] != 0 || !bytes.Equal(m.Raw, b) {
			t.Fatalf("accepted %d bytes of type %d version %d", len(b), b[0], b[1])
		}
		if m.Type == MsgInit && m.EncapKey == nil || m.Type == MsgResp && len(m.Cipher) != RespSize-HeaderSize-8-MACSize {
			t.Fatal("accepted a message without its body")
		}
		target.HandlePacket(c.nodes[1].addr, b)
	})
}

func TestParseRejects(t *testing.T) {
	var valid []byte
	for _, b := range recordExchange(t) {
		if MsgType(b[0]) == MsgInit {
			valid = b
			break
		}
	}
	if _, err := Parse(valid); err != nil {
		t.Fatalf("a real message: %v", err)
	}
	for name, mutate := range map[string]func([]byte) []byte{
		"short":       func(b []byte) []byte { return b[:len(b)-1] },
		"long":        func(b []byte) []byte { return append(b, 0) },
		"version":     func(b []byte) []byte { b[1] = 2; return b },
		"reserved":    func(b []byte) []byte { b[3] = 1; return b },
		"type":        func(b []byte) []byte { b[0] = 9; return b },
		"header only": func(b []byte) []byte { return b[:HeaderSize] },
		"bad ML-KEM key": func(b []byte) []byte {
			// A coefficient ≥ q: FIPS 203's modulus check rejects it.
			for i := HeaderSize + 16; i < HeaderSize+16+3; i++ {
				b[i] = 0xff
			}
			return b
		},
	} {
		b := mutate(append([]byte(nil), valid...))
		if _, err := Parse(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
