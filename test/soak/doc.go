// Package soak is crosswire's chaos soak: a 4-node cluster (2 pods per
// node, dual-stack) against a real kube-apiserver, continuous pod traffic
// on every node pair, an underlay capture for the whole run, and a seeded
// random schedule of faults (agents killed, upgraded and re-keyed, the API
// server and etcd stopped, paused and restarted, Nodes tampered with,
// deleted and joining, the datapath broken by hand behind the agent, the
// underlay flapped, made lossy and shrunk). Each fault has a heal bound
// derived from the agent's timers; the run fails on any plaintext pod
// packet on the underlay, any heal over its bound, or agent growth.
//
// `make soak` runs it for SOAK_TIME (default 10m); SOAK_SEED replays a
// schedule. docs/reliability.md states the bounds and holds a real run.
package soak
