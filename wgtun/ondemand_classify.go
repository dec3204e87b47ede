package wgtun

import (
	"crypto/subtle"
	"hash"

	"golang.org/x/crypto/blake2s"
	"golang.zx2c4.com/wireguard/device"
)

// wgMsgKind is what a received datagram is, judged by its header and size
// alone, the way wireguard-go's receive path judges it before it touches
// any state (device/receive.go, device/noise-protocol.go).
type wgMsgKind uint8

const (
	msgMalformed   wgMsgKind = iota // no WireGuard message wireguard-go would read
	msgInitiation                   // type 1, exactly 148 bytes
	msgResponse                     // type 2, exactly 92 bytes
	msgCookieReply                  // type 3, exactly 64 bytes
	msgTransport                    // type 4, header + padded content + tag
)

// classifyMsg returns the kind of the datagram msg. The type is a
// little-endian 32-bit word whose upper three bytes are zero.
//
// Transport data is the 16-byte header, then the content padded to a
// multiple of 16 and encrypted, then the 16-byte tag; the padding stops at
// the sender's tunnel MTU (calculatePaddingSize in device/send.go), so a
// full-size packet from a tunnel whose MTU is not a multiple of 16 (1420
// is not) has unaligned content, which is then at least the smallest MTU
// anybody runs (576).
func classifyMsg(msg []byte) wgMsgKind {
	if len(msg) < 4 || msg[1] != 0 || msg[2] != 0 || msg[3] != 0 {
		return msgMalformed
	}
	switch msg[0] {
	case device.MessageInitiationType:
		if len(msg) == device.MessageInitiationSize {
			return msgInitiation
		}
	case device.MessageResponseType:
		if len(msg) == device.MessageResponseSize {
			return msgResponse
		}
	case device.MessageCookieReplyType:
		if len(msg) == device.MessageCookieReplySize {
			return msgCookieReply
		}
	case device.MessageTransportType:
		if content := len(msg) - device.MessageTransportSize; content >= 0 &&
			(content%device.PaddingMultiple == 0 || content >= minMTU) {
			return msgTransport
		}
	}
	return msgMalformed
}

// macSize is the size of a handshake message's mac1 and mac2 fields
// (BLAKE2s-128).
const macSize = blake2s.Size128

// mac1Checker verifies the mac1 field of handshake initiations sent to one
// public key: mac1 = MAC(HASH("mac1----" || our public key), the message up
// to mac1), with MAC keyed BLAKE2s-128 and HASH BLAKE2s-256 (the WireGuard
// paper, 5.4.4; wireguard-go's CookieChecker.CheckMAC1). A valid mac1
// proves only that the sender knows our public key, which every Node
// object publishes: it keeps blind junk and initiations meant for another
// key (a peer with our stale key) from activating anything, not a
// determined sender. This is the protocol's own field checked with the
// library wireguard-go uses for it, not a construction of ours.
type mac1Checker struct {
	key [blake2s.Size]byte
}

func newMAC1Checker(pub Key) *mac1Checker {
	h, _ := blake2s.New256(nil) // only a key longer than 32 bytes fails
	h.Write([]byte(device.WGLabelMAC1))
	h.Write(pub[:])
	c := &mac1Checker{}
	h.Sum(c.key[:0])
	return c
}

// newMAC returns the keyed MAC; one per receive goroutine, as a hash is
// not safe for concurrent use.
func (c *mac1Checker) newMAC() hash.Hash {
	m, _ := blake2s.New128(c.key[:]) // the key is 32 bytes: cannot fail
	return m
}

// valid reports whether the initiation msg (classified msgInitiation)
// carries a valid mac1; m is from newMAC.
func (c *mac1Checker) valid(m hash.Hash, msg []byte) bool {
	end := len(msg) - 2*macSize // mac1, then mac2, end the message
	m.Reset()
	m.Write(msg[:end])
	var sum [macSize]byte
	m.Sum(sum[:0])
	return subtle.ConstantTimeCompare(sum[:], msg[end:end+macSize]) == 1
}
