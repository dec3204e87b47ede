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

	mu     sync.Mutex
	peers  map[string]proxy.Peer // the controller's, by node name
	syncMu sync.Mutex            // one sync at a time, so an older view never overwrites a newer one
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
// change of some. Call them before the engine's Update or Change, so that
// a classical peer's zero key is recorded before the device creates it.
func (a *pqAgent) replace(peers []proxy.Peer) {
	m := make(map[string]proxy.Peer, len(peers))
	for _, p := range peers {
		m[p.Name] = p
	}
	a.mu.Lock()
	a.peers = m
	a.mu.Unlock()
	a.sync()
}

func (a *pqAgent) apply(upsert []proxy.Peer, remove []string) {
	a.mu.Lock()
	if a.peers == nil {
		a.peers = map[string]proxy.Peer{}
	}
	for _, name := range remove {
		delete(a.peers, name)
	}
	for _, p := range upsert {
		a.peers[p.Name] = p
	}
	a.mu.Unlock()
	a.sync()
}

// sync gives the manager the peers with their activity.
func (a *pqAgent) sync() {
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	a.mu.Lock()
	peers := make([]proxy.Peer, 0, len(a.peers))
	for _, p := range a.peers {
		peers = append(peers, p)
	}
	a.mu.Unlock()
	var active map[wgtun.Key]bool
	if a.onDemand {
		stats, err := a.dev.Stats()
		if err != nil {
			a.log.Warn("post-quantum: read active peers", zap.Error(err))
			return
		}
		active = make(map[wgtun.Key]bool, len(stats))
		for _, s := range stats {
			active[s.PublicKey] = true
		}
	}
	out := make([]pqpsk.Peer, 0, len(peers))
	for _, p := range peers {
		if p.PublicKey.IsZero() {
			continue
		}
		q := pqpsk.Peer{Key: pqpsk.Key(p.PublicKey), Active: active == nil || active[p.PublicKey]}
		if p.PQPort != 0 && p.Endpoint.IsValid() {
			q.PQ, q.Addr = true, netip.AddrPortFrom(p.Endpoint.Addr(), p.PQPort)
		}
		out = append(out, q)
	}
	a.m.SetPeers(out)
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
				a.sync()
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
