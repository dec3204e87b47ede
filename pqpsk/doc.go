// Package pqpsk agrees on a post-quantum preshared key (PSK) for each
// WireGuard peer: an ML-KEM-768 exchange over the underlay, authenticated
// by the two nodes' WireGuard static keys (an X25519 static-static
// Diffie-Hellman fed into HKDF with the transcript hash), ratcheted from
// the previous PSK and rotated on a schedule. A peer for which no fresh
// PSK can be agreed within a bound is failed closed. docs/post-quantum.md
// describes the protocol, its byte layouts, timers and security argument;
// this package is its implementation:
//
//   - message.go: the messages and their strict parser;
//   - keys.go: the key schedule;
//   - manager.go, exchange.go: the per-peer state machine, driven by an
//     injectable clock and transport;
//   - udp.go: the UDP transport the agent uses.
package pqpsk
