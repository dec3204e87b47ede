package main

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/pqpsk"
	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// pqOptions are the post-quantum flags (docs/post-quantum.md).
type pqOptions struct {
	mode   string
	port   uint16
	rotate time.Duration
}

func defaultPQOptions() pqOptions {
	return pqOptions{mode: "off", port: pqpsk.DefaultPort, rotate: pqpsk.DefaultRotate}
}

func (o *pqOptions) flags(fs *pflag.FlagSet) {
	fs.StringVar(&o.mode, "post-quantum", o.mode, "hybrid post-quantum protection: off, on (an ML-KEM-768 preshared key per peer that supports it, rotated; other peers classical) or required (peers without support get no traffic); a peer without a fresh key fails closed (see docs/post-quantum.md)")
	fs.Uint16Var(&o.port, "pq-port", o.port, "UDP port of the post-quantum key exchange (published in the crosswire.dev/pq-port annotation)")
	fs.DurationVar(&o.rotate, "pq-rotate", o.rotate, "post-quantum preshared key rotation interval; a peer without a key agreed for twice this long fails closed (at least 5s)")
}

func (o *pqOptions) validate() (pqpsk.Mode, error) {
	m, err := pqpsk.ParseMode(o.mode)
	if err != nil {
		return m, fmt.Errorf("--post-quantum: %w", err)
	}
	if o.rotate < 5*time.Second {
		return m, fmt.Errorf("--pq-rotate %v: must be at least 5s", o.rotate)
	}
	if m != pqpsk.ModeOff && o.port == 0 {
		return m, fmt.Errorf("--pq-port must not be 0 with --post-quantum=%s", m)
	}
	return m, nil
}

// pqInstaller is the device as the key manager sees it.
type pqInstaller struct{ dev *wgtun.Device }

func (i pqInstaller) SetPresharedKey(peer, psk pqpsk.Key) error {
	return i.dev.SetPresharedKey(wgtun.Key(peer), wgtun.Key(psk))
}
func (i pqInstaller) FailClosed(peer pqpsk.Key) error { return i.dev.FailClosed(wgtun.Key(peer)) }
func (i pqInstaller) ResetPeer(peer, psk pqpsk.Key, initiate bool) error {
	return i.dev.ResetPeer(wgtun.Key(peer), wgtun.Key(psk), initiate)
}
func (i pqInstaller) ForgetPresharedKey(peer pqpsk.Key) {
	i.dev.ForgetPresharedKey(wgtun.Key(peer))
}

// pqAgent runs the key manager beside the engine: the controller's peers
// go to both, and with on-demand peers the device says which are active.
type pqAgent struct {
	m        *pqpsk.Manager
	udp      *pqpsk.UDP
	dev      *wgtun.Device
	onDemand bool
	log      *zap.Logger

	// mu orders the manager's updates as the controller's changes came.
	mu     sync.Mutex
	peers  map[string]proxy.Peer // the controller's, by node name
	active map[wgtun.Key]bool    // with on-demand peers: WireGuard's peers at the last tick
}

// newPQAgent opens the exchange's socket (in the node's network namespace:
// see docs/post-quantum.md, "Transport") and creates the manager.
func newPQAgent(o *options, mode pqpsk.Mode, key wgtun.Key, dev *wgtun.Device, log *zap.Logger) (*pqAgent, error) {
	udp, err := pqpsk.ListenUDP(o.pq.port)
	if err != nil {
		return nil, err
	}
	m, err := pqpsk.New(pqpsk.Config{Mode: mode, PrivateKey: pqpsk.Key(key), Rotate: o.pq.rotate, Log: log},
		udp, pqInstaller{dev: dev})
	if err != nil {
		udp.Close()
		return nil, err
	}
	log.Info("post-quantum key exchange listening", zap.String("mode", mode.String()), zap.Uint16("port", udp.Port()),
		zap.Duration("rotate", o.pq.rotate), zap.Duration("failClosedAfter", 2*o.pq.rotate))
	return &pqAgent{m: m, udp: udp, dev: dev, onDemand: o.onDemand, log: log}, nil
}

// replace hands the controller's full peer list to the manager; apply a
// change of some (in time proportional to the change). Call them before
// the engine's Update or Change, so that a classical peer's zero key is
// recorded before the device creates it.
func (a *pqAgent) replace(peers []proxy.Peer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.peers = make(map[string]proxy.Peer, len(peers))
	out := make([]pqpsk.Peer, 0, len(peers))
	for _, p := range peers {
		a.peers[p.Name] = p
		if q, ok := a.pqPeer(p); ok {
			out = append(out, q)
		}
	}
	a.m.SetPeers(out)
}

func (a *pqAgent) apply(upsert []proxy.Peer, remove []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.peers == nil {
		a.peers = map[string]proxy.Peer{}
	}
	var gone []pqpsk.Key
	for _, name := range remove {
		if old, ok := a.peers[name]; ok && !old.PublicKey.IsZero() {
			gone = append(gone, pqpsk.Key(old.PublicKey))
		}
		delete(a.peers, name)
	}
	var out []pqpsk.Peer
	for _, p := range upsert {
		if old, ok := a.peers[p.Name]; ok && old.PublicKey != p.PublicKey && !old.PublicKey.IsZero() {
			gone = append(gone, pqpsk.Key(old.PublicKey)) // re-keyed
		}
		a.peers[p.Name] = p
		if q, ok := a.pqPeer(p); ok {
			out = append(out, q)
		}
	}
	a.m.Update(out, gone)
}

// pqPeer is p as the manager sees it; false for a node without a key.
// With on-demand peers a new peer starts inactive: the next tick reads
// the device. Caller holds a.mu.
func (a *pqAgent) pqPeer(p proxy.Peer) (pqpsk.Peer, bool) {
	if p.PublicKey.IsZero() {
		return pqpsk.Peer{}, false
	}
	q := pqpsk.Peer{Key: pqpsk.Key(p.PublicKey), Active: !a.onDemand || a.active[p.PublicKey]}
	if p.PQPort != 0 && p.Endpoint.IsValid() {
		q.PQ, q.Addr = true, netip.AddrPortFrom(p.Endpoint.Addr(), p.PQPort)
	}
	return q, true
}

// follow reads which peers WireGuard holds (on-demand peers) and tells
// the manager.
func (a *pqAgent) follow() {
	stats, err := a.dev.Stats()
	if err != nil {
		a.log.Warn("post-quantum: read active peers", zap.Error(err))
		return
	}
	active := make(map[wgtun.Key]bool, len(stats))
	for _, s := range stats {
		active[s.PublicKey] = true
	}
	a.mu.Lock()
	a.active = active
	a.mu.Unlock()
	a.m.SetActive(func(k pqpsk.Key) bool { return active[wgtun.Key(k)] })
}

// run serves the socket, drives the timers and, with on-demand peers,
// follows the device's active set every tick.
func (a *pqAgent) run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.udp.Serve(ctx, a.m.HandlePacket) }()
	t := time.NewTicker(pqpsk.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case err := <-errc:
			return err
		case <-t.C:
			if a.onDemand {
				a.follow()
			}
			a.m.Tick()
		}
	}
}

func (a *pqAgent) port() uint16 {
	if a == nil {
		return 0
	}
	return a.udp.Port()
}

// status is the manager for the status report; nil (an untyped nil
// interface) when off.
func (a *pqAgent) status() agentstatus.PQ {
	if a == nil {
		return nil
	}
	return a.m
}

func (a *pqAgent) close() {
	if a != nil {
		_ = a.udp.Close()
	}
}
