package pqpsk

import (
	"crypto/mlkem"
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the protocol version this package speaks.
const Version = 1

// MsgType is a message's first byte.
type MsgType uint8

// The message types (docs/post-quantum.md, "Messages").
const (
	MsgInit    MsgType = 1
	MsgResp    MsgType = 2
	MsgConfirm MsgType = 3
	MsgAck     MsgType = 4
	MsgPoke    MsgType = 5
)

func (t MsgType) String() string {
	switch t {
	case MsgInit:
		return "init"
	case MsgResp:
		return "resp"
	case MsgConfirm:
		return "confirm"
	case MsgAck:
		return "ack"
	case MsgPoke:
		return "poke"
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// Sizes of the fields and messages.
const (
	KeySize    = 32
	SIDSize    = 16
	MACSize    = 32
	HeaderSize = 4 + KeySize + SIDSize // type, version, reserved, sender, session id

	InitSize    = HeaderSize + 8 + 8 + mlkem.EncapsulationKeySize768 + MACSize // 1284
	RespSize    = HeaderSize + 8 + mlkem.CiphertextSize768 + MACSize           // 1180
	ConfirmSize = HeaderSize + MACSize                                         // 84
	AckSize     = HeaderSize + MACSize
	PokeSize    = HeaderSize + MACSize

	// MaxMessageSize is the largest message; a receive buffer of this size
	// plus one byte tells an oversized datagram from a valid one.
	MaxMessageSize = InitSize
)

// Key is a 32-byte key: a WireGuard public key or a PSK.
type Key = [KeySize]byte

// SID is a session id (a nonce in a Poke).
type SID = [SIDSize]byte

// Message is a parsed message. Only the fields of its type are set; Raw
// is the whole wire form (the MACs and the transcript cover it).
type Message struct {
	Type      MsgType
	Sender    Key
	SID       SID
	BaseEpoch uint64                     // Init: the initiator's base; Resp: the base used
	BaseID    [8]byte                    // Init
	EncapKey  *mlkem.EncapsulationKey768 // Init
	Cipher    []byte                     // Resp
	MAC       [MACSize]byte
	Raw       []byte
}

// ErrMalformed wraps every parse error.
var ErrMalformed = errors.New("malformed message")

func sizeOf(t MsgType) int {
	switch t {
	case MsgInit:
		return InitSize
	case MsgResp:
		return RespSize
	case MsgConfirm, MsgAck, MsgPoke:
		return ConfirmSize
	}
	return -1
}

// Parse parses a message strictly: exact length for its type, known
// version, zero reserved bytes, a valid ML-KEM encapsulation key. b is
// not retained (Raw is a copy).
func Parse(b []byte) (*Message, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the header", ErrMalformed, len(b))
	}
	t := MsgType(b[0])
	want := sizeOf(t)
	if want < 0 {
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, b[0])
	}
	if b[1] != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[1], Version)
	}
	if b[2] != 0 || b[3] != 0 {
		return nil, fmt.Errorf("%w: reserved bytes not zero", ErrMalformed)
	}
	if len(b) != want {
		return nil, fmt.Errorf("%w: %s of %d bytes, want %d", ErrMalformed, t, len(b), want)
	}
	m := &Message{Type: t, Raw: append([]byte(nil), b...)}
	copy(m.Sender[:], b[4:36])
	copy(m.SID[:], b[36:HeaderSize])
	copy(m.MAC[:], b[len(b)-MACSize:])
	body := m.Raw[HeaderSize : len(b)-MACSize]
	switch t {
	case MsgInit:
		m.BaseEpoch = binary.BigEndian.Uint64(body[0:8])
		copy(m.BaseID[:], body[8:16])
		ek, err := mlkem.NewEncapsulationKey768(body[16:])
		if err != nil {
			return nil, fmt.Errorf("%w: init: encapsulation key: %v", ErrMalformed, err)
		}
		m.EncapKey = ek
	case MsgResp:
		m.BaseEpoch = binary.BigEndian.Uint64(body[0:8])
		m.Cipher = body[8:]
	}
	return m, nil
}

// header writes the 52-byte header into b.
func header(b []byte, t MsgType, sender Key, sid SID) {
	b[0], b[1], b[2], b[3] = byte(t), Version, 0, 0
	copy(b[4:36], sender[:])
	copy(b[36:HeaderSize], sid[:])
}

// The marshal functions return the message without its MAC filled in:
// the last MACSize bytes are zero, for the caller to seal.

func marshalInit(sender Key, sid SID, base uint64, baseID [8]byte, ek []byte) []byte {
	b := make([]byte, InitSize)
	header(b, MsgInit, sender, sid)
	binary.BigEndian.PutUint64(b[HeaderSize:], base)
	copy(b[HeaderSize+8:], baseID[:])
	copy(b[HeaderSize+16:], ek)
	return b
}

func marshalResp(sender Key, sid SID, base uint64, ct []byte) []byte {
	b := make([]byte, RespSize)
	header(b, MsgResp, sender, sid)
	binary.BigEndian.PutUint64(b[HeaderSize:], base)
	copy(b[HeaderSize+8:], ct)
	return b
}

func marshalShort(t MsgType, sender Key, sid SID) []byte {
	b := make([]byte, ConfirmSize)
	header(b, t, sender, sid)
	return b
}

// unsealed returns the message without its MAC.
func unsealed(raw []byte) []byte { return raw[:len(raw)-MACSize] }
