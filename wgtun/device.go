package wgtun

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// Device is a running wireguard-go device on a TUN interface.
type Device struct {
	cfg  Config
	log  *zap.Logger
	wg   *device.Device
	tun  *nsTUN
	uapi *uapiServer
	pub  Key
	port uint16

	setMu   sync.Mutex    // serialises our writes: SetPeers, SyncPeers and the on-demand activator and trimmer
	written map[Key]Peer  // peers as our last write left them (normalised); nil = unknown
	ipcSets atomic.Uint64 // UAPI set operations we issued; tests check diffs write nothing
	nPeers  atomic.Int64  // peers of the last successful write, for PeerCounts

	od  *onDemand // nil unless Config.OnDemand
	psk pskStore  // preshared keys of peers it creates (psk.go)
	fu  followUps // peers reset with an agreed key, until they handshake (psk.go)

	reads readRecord // the device's last own read; stats.go

	closeOnce sync.Once
	closeErr  error
}

// Open creates the TUN interface, starts wireguard-go on it, brings the link
// up and serves the UAPI socket. Everything that binds to a network namespace
// (the TUN, its netlink handle, the UDP sockets) is created in the namespace
// of the calling OS thread, and stays there: a caller that switches
// namespaces must lock its thread around Open. Later calls on the Device may
// come from any thread.
func Open(cfg Config) (*Device, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With(zap.String("iface", cfg.Name))

	// CreateTUN turns on the TUN's virtio-net header and TSO/USO offloads
	// itself when the kernel supports them.
	t, err := tun.CreateTUN(cfg.Name, cfg.MTU)
	if err != nil {
		return nil, fmt.Errorf("wgtun %s: create TUN: %w", cfg.Name, err)
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("wgtun %s: netlink handle: %w", cfg.Name, err)
	}
	link, err := nl.LinkByName(cfg.Name)
	if err != nil {
		nl.Close()
		t.Close()
		return nil, fmt.Errorf("wgtun %s: look up TUN link: %w", cfg.Name, err)
	}
	nt := newNSTUN(t, nl, link.Attrs().Index)

	d := &Device{cfg: cfg, log: log, pub: cfg.PrivateKey.PublicKey(), tun: nt}
	d.psk.require = cfg.RequirePresharedKey
	// Without OnDemand wireguard-go gets the TUN and bind as they are: no
	// wrapper on the packet paths.
	var tdev tun.Device = nt
	bind := conn.NewDefaultBind()
	if cfg.OnDemand {
		d.od = newOnDemand(cfg.IdleTimeout, d.pub, log)
		tdev = &onDemandTUN{Device: nt, od: d.od}
		bind = &onDemandBind{Bind: bind, od: d.od}
	}
	d.wg = device.NewDevice(tdev, bind, wgLogger(log))
	fail := func(err error) (*Device, error) {
		d.wg.Close() // also closes the TUN, which deletes the interface
		return nil, fmt.Errorf("wgtun %s: %w", cfg.Name, err)
	}

	// The UDP sockets are opened by Up below (listen_port only records the
	// port while the device is down), i.e. on this thread.
	if err := d.ipcSet(fmt.Sprintf("private_key=%s\nlisten_port=%d\nfwmark=%d\n",
		cfg.PrivateKey.hex(), cfg.ListenPort, cfg.FwMark)); err != nil {
		return fail(fmt.Errorf("configure device: %w", err))
	}
	if err := d.wg.Up(); err != nil {
		return fail(fmt.Errorf("bring device up (UDP port %d): %w", cfg.ListenPort, err))
	}
	nt.mu.Lock()
	err = nl.LinkSetMTU(link, cfg.MTU)
	if err == nil {
		err = nl.LinkSetUp(link)
	}
	nt.mu.Unlock()
	if err != nil {
		return fail(fmt.Errorf("set link MTU %d and up: %w", cfg.MTU, err))
	}

	st, err := d.state()
	if err != nil {
		return fail(err)
	}
	d.port = st.ListenPort

	d.uapi, err = listenUAPI(cfg.SocketDir, cfg.Name, d.wg.IpcHandle, log)
	if err != nil {
		return fail(err)
	}
	if d.od != nil {
		// No peer is desired before the first SetPeers, so nothing can ask
		// for an activation before the activator runs.
		d.od.done.Add(2)
		go d.runActivator()
		go d.runTrimmer()
	}
	log.Info("wireguard device up", zap.Uint16("port", d.port), zap.Int("mtu", cfg.MTU),
		zap.Stringer("publicKey", d.pub), zap.String("uapi", d.uapi.path),
		zap.Bool("onDemand", cfg.OnDemand), zap.Duration("idleTimeout", cfg.IdleTimeout))
	return d, nil
}

func wgLogger(l *zap.Logger) *device.Logger {
	s := l.Named("wireguard-go").Sugar()
	return &device.Logger{Verbosef: s.Debugf, Errorf: func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		// A quiet re-created peer (psk.go) starts a handshake without an
		// endpoint on purpose: not an error.
		if strings.HasSuffix(msg, "Failed to send handshake initiation: no known endpoint for peer") {
			s.Debug(msg)
			return
		}
		s.Error(msg)
	}}
}

// Name returns the interface name.
func (d *Device) Name() string { return d.cfg.Name }

// PublicKey returns the device's public key.
func (d *Device) PublicKey() Key { return d.pub }

// ListenPort returns the UDP port the device listens on (the kernel's pick
// if Config.ListenPort was 0).
func (d *Device) ListenPort() uint16 { return d.port }

// ipcSet is the one path of every UAPI set we issue; peers it creates get
// their preshared key (psk.go).
func (d *Device) ipcSet(body string) error {
	d.ipcSets.Add(1)
	return d.wg.IpcSet(d.psk.amend(body))
}

// SetPeers makes the device's peers peers, writing only the difference
// from what the previous SetPeers or SyncPeers left (see Diff) in a single
// UAPI operation, or nothing at all. It does not read the device back:
// that read, and its garbage, grow with the number of peers while an event
// changes one (in a large cluster it was most of an event's cost). So it
// repairs nothing it did not write itself: a peer removed by
// hand, or an endpoint the device learnt from a roaming peer, stays as it is
// until the next SyncPeers. Without a record (first call, or after an
// error) it is SyncPeers.
//
// With Config.OnDemand, peers is the full desired set, and what is written
// is its active part (see ondemand.go): a changed active peer is updated,
// a no-longer-desired active peer removed, an inactive one not configured.
func (d *Device) SetPeers(peers []Peer) error {
	if err := d.validatePeers(peers); err != nil {
		return fmt.Errorf("wgtun %s: set peers: %w", d.cfg.Name, err)
	}
	d.setMu.Lock()
	defer d.setMu.Unlock()
	if d.written == nil {
		_, err := d.syncLocked(peers)
		return err
	}
	desired := indexPeers(peers)
	if d.od != nil {
		desired = d.od.setDesiredLocked(desired, nil, time.Now())
	}
	return d.writeLocked(d.written, desired)
}

// SyncPeers makes the device's peers exactly peers: it reads the device
// back and writes the difference, so it also repairs changes made by
// others (wg set), removes peers it does not know and resets endpoints the
// device learnt from roaming peers to the configured ones. It describes
// what it found different ("" if nothing), for the drift log. The engine
// calls it on every full resync.
//
// With Config.OnDemand the device is compared with, and made, the active
// part of peers: inactive peers are not missing, an active one removed by
// hand is, and a desired peer the device holds anyway becomes active.
func (d *Device) SyncPeers(peers []Peer) (string, error) {
	if err := d.validatePeers(peers); err != nil {
		return "", fmt.Errorf("wgtun %s: sync peers: %w", d.cfg.Name, err)
	}
	d.setMu.Lock()
	defer d.setMu.Unlock()
	return d.syncLocked(peers)
}

func (d *Device) syncLocked(peers []Peer) (string, error) {
	d.written = nil
	st, err := d.state()
	if err != nil {
		return "", fmt.Errorf("sync peers: %w", err)
	}
	current := make(map[Key]Peer, len(st.Peers))
	for _, p := range st.Peers {
		current[p.PublicKey] = normalizePeer(p.Peer)
	}
	desired := indexPeers(peers)
	if d.od != nil {
		desired = d.od.setDesiredLocked(desired, current, time.Now())
	}
	drift := describeDrift(current, desired)
	return drift, d.writeLocked(current, desired)
}

// describeDrift counts how current differs from desired (both normalised).
func describeDrift(current, desired map[Key]Peer) string {
	var missing, wrong, unexpected int
	for k, w := range desired {
		switch c, ok := current[k]; {
		case !ok:
			missing++
		case !samePeer(c, w):
			wrong++
		}
	}
	for k := range current {
		if _, ok := desired[k]; !ok {
			unexpected++
		}
	}
	if missing+wrong+unexpected == 0 {
		return ""
	}
	return fmt.Sprintf("tunnel peers: %d missing, %d differ, %d unexpected", missing, wrong, unexpected)
}

// writeLocked writes the difference between current and desired (both
// normalised) and records what the device holds afterwards. A failed write
// leaves no record: the next SetPeers reads the device back.
func (d *Device) writeLocked(current, desired map[Key]Peer) error {
	body := diffIndexed(current, desired, d.cfg.Keepalive)
	if body != "" {
		d.written = nil
		if err := d.ipcSet(body); err != nil {
			return fmt.Errorf("wgtun %s: set peers: uapi set: %w", d.cfg.Name, err)
		}
	}
	// A desired peer without endpoint keeps the device's (Diff leaves it).
	for k, w := range desired {
		if !w.Endpoint.IsValid() {
			w.Endpoint = current[k].Endpoint
			desired[k] = w
		}
	}
	d.written = desired
	d.nPeers.Store(int64(len(desired)))
	return nil
}

func (d *Device) validatePeers(peers []Peer) error {
	seen := make(map[Key]bool, len(peers))
	var errs []error
	for _, p := range peers {
		switch {
		case p.PublicKey.IsZero():
			errs = append(errs, errors.New("peer with zero public key"))
		case p.PublicKey == d.pub:
			// wireguard-go silently ignores it, so Diff would retry forever.
			errs = append(errs, fmt.Errorf("peer %s is this device's own key", p.PublicKey))
		case seen[p.PublicKey]:
			errs = append(errs, fmt.Errorf("peer %s listed twice", p.PublicKey))
		}
		seen[p.PublicKey] = true
		for _, pfx := range p.AllowedIPs {
			if !pfx.IsValid() {
				errs = append(errs, fmt.Errorf("peer %s: invalid allowed IP %v", p.PublicKey, pfx))
			}
		}
		if p.Endpoint.IsValid() && p.Endpoint.Port() == 0 {
			errs = append(errs, fmt.Errorf("peer %s: endpoint %v has port 0", p.PublicKey, p.Endpoint))
		}
	}
	return errors.Join(errs...)
}

// InitiateHandshakes starts a handshake with every peer that has an
// endpoint, now, instead of waiting for traffic. After a restart the remote
// side still holds a session with our previous incarnation; if it only
// receives, it would notice only after ~15 s. The initiation makes it drop
// that session at once, and wireguard-go's answer to the response is a
// keepalive that confirms the new session on the remote side.
//
// It calls wireguard-go's exported Peer.SendHandshakeInitiation, which
// sends at most one initiation per peer every 5 s (RekeyTimeout), so calling
// it often is harmless.
func (d *Device) InitiateHandshakes() {
	st, err := d.state()
	if err != nil {
		d.log.Warn("initiate handshakes: read peers", zap.Error(err))
		return
	}
	for _, p := range st.Peers {
		if !p.Endpoint.IsValid() {
			continue
		}
		peer := d.wg.LookupPeer(device.NoisePublicKey(p.PublicKey))
		if peer == nil {
			continue // removed since we listed it
		}
		if err := peer.SendHandshakeInitiation(false); err != nil {
			d.log.Debug("initiate handshake", zap.Stringer("peer", p.PublicKey), zap.Error(err))
		}
	}
}

// Closed is closed once the device has stopped: by Close, or by
// wireguard-go itself when its TUN went away (the link was deleted). A
// closed device cannot be reopened; its owner must make a new one.
func (d *Device) Closed() <-chan struct{} { return d.wg.Wait() }

// Close stops serving UAPI, removes the socket file and closes the device;
// closing the TUN deletes the interface. Calling Close again returns the
// first result.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		if d.od != nil {
			d.od.halt() // packet paths stop waiting for activations
		}
		var errs []error
		if d.uapi != nil {
			if err := d.uapi.close(); err != nil {
				errs = append(errs, err)
			}
		}
		d.wg.Close()
		if d.od != nil {
			// After wg.Close every IpcSet the goroutines may be blocked in
			// has returned (see ondemand.go).
			d.od.done.Wait()
		}
		if len(errs) > 0 {
			d.closeErr = fmt.Errorf("wgtun %s: close: %w", d.cfg.Name, errors.Join(errs...))
		}
	})
	return d.closeErr
}
