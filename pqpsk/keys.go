package pqpsk

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// HKDF labels (docs/post-quantum.md, "Keys"). Each names its purpose and
// the protocol version, so no key of one purpose can be one of another.
const (
	labelInit = "crosswire pq v1 init"
	labelPoke = "crosswire pq v1 poke"
	labelKeys = "crosswire pq v1 keys"
	labelID   = "crosswire pq v1 id"
)

// pairKeys are the keys of one pair of nodes that depend only on their
// static identities; they are computed once per peer.
type pairKeys struct {
	initiator, responder Key // the ID: initiator's public key first
	s                    []byte
	kInit, kPoke         []byte
}

// newPairKeys computes S = X25519(priv, peer) and the keys derived from it.
// The X25519 implementation rejects a low-order peer key (all-zero
// result), so a bogus published key cannot make S predictable.
func newPairKeys(priv *ecdh.PrivateKey, self, peer Key) (*pairKeys, error) {
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return nil, fmt.Errorf("peer public key: %w", err)
	}
	s, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("static-static X25519 with %x: %w", peer[:4], err)
	}
	pk := &pairKeys{s: s}
	if isInitiator(self, peer) {
		pk.initiator, pk.responder = self, peer
	} else {
		pk.initiator, pk.responder = peer, self
	}
	if pk.kInit, err = hkdf.Key(sha256.New, s, nil, labelInit+pk.id(), 32); err != nil {
		return nil, fmt.Errorf("derive init key: %w", err)
	}
	if pk.kPoke, err = hkdf.Key(sha256.New, s, nil, labelPoke+pk.id(), 32); err != nil {
		return nil, fmt.Errorf("derive poke key: %w", err)
	}
	return pk, nil
}

// isInitiator: the lower public key initiates.
func isInitiator(self, peer Key) bool {
	for i := range self {
		if self[i] != peer[i] {
			return self[i] < peer[i]
		}
	}
	return false
}

// id is I || R as an HKDF info suffix.
func (pk *pairKeys) id() string { return string(pk.initiator[:]) + string(pk.responder[:]) }

// sessionKeys are what one exchange derives.
type sessionKeys struct {
	kResp, kConf, kAck []byte
	psk                Key
}

// deriveSession is HKDF(secret = ss || S, salt = base PSK, info = label ||
// ID || th): every key of the exchange depends on the KEM secret, the
// static-static DH, the previous PSK and the transcript.
func (pk *pairKeys) deriveSession(ss []byte, base Key, th []byte) (sessionKeys, error) {
	secret := make([]byte, 0, len(ss)+len(pk.s))
	secret = append(append(secret, ss...), pk.s...)
	okm, err := hkdf.Key(sha256.New, secret, base[:], labelKeys+pk.id()+string(th), 128)
	if err != nil {
		return sessionKeys{}, fmt.Errorf("derive session keys: %w", err)
	}
	var sk sessionKeys
	sk.kResp, sk.kConf, sk.kAck = okm[0:32], okm[32:64], okm[64:96]
	copy(sk.psk[:], okm[96:128])
	return sk, nil
}

// baseID names a PSK without revealing it.
func baseID(k Key) [8]byte {
	var id [8]byte
	okm, err := hkdf.Key(sha256.New, k[:], nil, labelID, 8)
	if err != nil {
		panic(fmt.Sprintf("pqpsk: hkdf of 8 bytes: %v", err)) // only for lengths > 255*32
	}
	copy(id[:], okm)
	return id
}

// transcript is th = SHA-256(Init || Resp without MAC).
func transcript(init, respUnsealed []byte) []byte {
	h := sha256.New()
	h.Write(init)
	h.Write(respUnsealed)
	return h.Sum(nil)
}

func mac(key []byte, parts ...[]byte) [MACSize]byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	var out [MACSize]byte
	copy(out[:], h.Sum(nil))
	return out
}

// seal writes MAC(key, parts..., msg without MAC) into msg's last bytes.
func seal(msg []byte, key []byte, prefix ...[]byte) {
	m := mac(key, append(prefix, unsealed(msg))...)
	copy(msg[len(msg)-MACSize:], m[:])
}

// verify checks msg's MAC in constant time.
func verify(msg *Message, key []byte, prefix ...[]byte) bool {
	want := mac(key, append(prefix, unsealed(msg.Raw))...)
	return hmac.Equal(want[:], msg.MAC[:])
}
