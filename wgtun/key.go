package wgtun

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// Key is a Curve25519 key, private or public.
type Key [32]byte

// keyBase64Len is the length of a 32-byte key in padded standard base64,
// the form wg(8) prints and reads.
const keyBase64Len = 44

// ParseKey parses a key in the base64 form used by wg(8).
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != keyBase64Len {
		return k, fmt.Errorf("parse key: want %d base64 characters, got %d", keyBase64Len, len(s))
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return k, fmt.Errorf("parse key: invalid base64: %w", err)
	}
	if len(b) != len(k) {
		return k, fmt.Errorf("parse key: decodes to %d bytes, want %d", len(b), len(k))
	}
	copy(k[:], b)
	return k, nil
}

// String returns the key in the base64 form used by wg(8).
func (k Key) String() string {
	return base64.StdEncoding.EncodeToString(k[:])
}

// IsZero reports whether k is the all-zero key, which WireGuard treats as
// "no key".
func (k Key) IsZero() bool {
	return k == Key{}
}

// PublicKey derives the public key of a private key. X25519 clamps the
// scalar itself, so an unclamped private key gives the same result wg(8)
// would.
func (k Key) PublicKey() Key {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		// NewPrivateKey fails only on a wrong length, impossible for [32]byte.
		panic(fmt.Sprintf("wgtun: X25519 private key: %v", err))
	}
	var pub Key
	copy(pub[:], priv.PublicKey().Bytes())
	return pub
}

// hex renders the key as the UAPI protocol wants it (lower-case hex, not
// base64).
func (k Key) hex() string {
	return hex.EncodeToString(k[:])
}

func parseHexKey(s string) (Key, error) {
	var k Key
	if len(s) != 2*len(k) {
		return k, fmt.Errorf("hex key: want %d characters, got %d", 2*len(k), len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("hex key: %w", err)
	}
	return k, nil
}

// GeneratePrivateKey returns a new random, clamped Curve25519 private key,
// as `wg genkey` does.
func GeneratePrivateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("generate private key: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}
