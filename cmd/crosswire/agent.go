package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/pqpsk"
	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

func newAgentCommand() *cobra.Command {
	o := defaultOptions()
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: keep the datapath in step with the cluster's nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), &o)
		},
	}
	fs := cmd.Flags()
	o.datapathFlags(fs)
	fs.StringVar(&o.nodeName, "node-name", o.nodeName, "this node's name (default $NODE_NAME)")
	fs.Uint16Var(&o.listenPort, "listen-port", o.listenPort, "WireGuard UDP port")
	fs.IntVar(&o.mtu, "mtu", o.mtu, "tunnel MTU; 0 = automatic: derived from the underlay at start and kept in step with the routes to the peers' endpoints (their MTU minus WireGuard's overhead)")
	fs.Var(&o.wgFwmark, "wg-fwmark", "fwmark of the tunnel's own UDP packets (must not match --mark/--mask)")
	fs.DurationVar(&o.resync, "resync-interval", o.resync, "how often kernel state is checked and repaired")
	fs.IntVar(&o.keepalive, "keepalive", o.keepalive, "WireGuard persistent keepalive in seconds (0: off)")
	fs.StringVar(&o.nodesFile, "nodes-file", o.nodesFile, "read Nodes from this Kubernetes NodeList (YAML or JSON) instead of the API server")
	fs.BoolVar(&o.onDemand, "on-demand-peers", o.onDemand, "configure a node's WireGuard peer only while there is traffic with it (the first packet either way configures it; --peer-idle-timeout removes it again): saves ~30 KiB and two goroutines per idle node, for clusters of a thousand nodes and more")
	fs.DurationVar(&o.peerIdle, "peer-idle-timeout", o.peerIdle, "with --on-demand-peers: remove a peer after this long without a handshake or traffic (at least 10s)")
	fs.Var(&o.clusterCIDRs, "cluster-cidrs", "with --strict: the cluster's pod address ranges, comma-separated (e.g. 10.244.0.0/16,fd00:10:244::/56): a local pod's traffic to any address in them that is not local and not leaving by the tunnel is dropped, so a Node this agent has not applied yet is not reached in clear")
	fs.BoolVar(&o.strict, "strict", o.strict, "fail closed for nodes without a key too: drop pod traffic to a known node until it has a key, and drop plaintext from remote pod CIDRs to local pods (see docs/design.md before enabling on a running cluster)")
	o.serve.flags(fs)
	o.pq.flags(fs)
	fs.StringVar(&o.kubeconfig, "kubeconfig", o.kubeconfig, "kubeconfig file for the API server (default: in-cluster service account); ignored with --nodes-file")
	return cmd
}

// nodeSource is where the agent learns the cluster's Nodes: a file or the
// API server.
type nodeSource interface {
	Run(ctx context.Context, sink controller.Sink) error
}

// agentSink hands the sources' states and changes to the engine, and
// their rejections to the status.
type agentSink struct {
	engine *proxy.Engine
	status *agentstatus.Source
	pq     *pqAgent // nil unless --post-quantum
}

// The key manager hears of peers before the engine, so that a classical
// peer's zero key is recorded before the device creates the peer.
func (s agentSink) Replace(st controller.State) {
	s.status.SetRejected(st.Rejected)
	if s.pq != nil {
		s.pq.replace(st.Peers)
	}
	s.engine.Update(st.Desired())
}

func (s agentSink) Apply(c controller.Change) {
	if c.RejectedChanged {
		s.status.SetRejected(c.Rejected)
	}
	if s.pq != nil {
		s.pq.apply(c.Upsert, c.Remove)
	}
	s.engine.Change(c.Delta())
}

func runAgent(ctx context.Context, o *options) error {
	if err := o.validate(); err != nil {
		return err
	}
	if err := o.serve.validate(); err != nil {
		return err
	}
	pqMode, err := o.pq.validate()
	if err != nil {
		return err
	}
	if o.nodeName == "" {
		return errors.New("--node-name (or $NODE_NAME) is required")
	}
	if err := requireNetAdmin("/proc/self/status"); err != nil {
		return err
	}
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("node", o.nodeName))
	// Which build runs: an upgrade or rollback is visible in the log.
	log.Info("crosswire agent starting", zap.String("version", version), zap.String("revision", revision))
	if limit, err := setMemoryLimit(cgroupMemoryMax); err != nil {
		log.Warn("no Go memory limit from the container's", zap.Error(err))
	} else if limit > 0 {
		log.Info("Go memory limit from the container's", zap.Int64("bytes", limit), zap.Float64("share", memoryLimitShare))
	}

	// The API client first: a bad kubeconfig fails before any kernel state
	// is touched.
	var client kubeClients
	if o.nodesFile == "" {
		if client, err = newKubeClients(o.kubeconfig); err != nil {
			return err
		}
	}

	before, changed, err := wgtun.SecureKeyDir(o.stateDir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	key, created, err := wgtun.LoadOrCreateKey(o.keyFile())
	if err != nil {
		return fmt.Errorf("private key: %w", err)
	}
	logStateDir(log, o.stateDir, before, changed, created)
	log.Info("private key ready", zap.String("file", o.keyFile()), zap.Bool("created", created),
		zap.String("public_key", key.PublicKey().String()))

	mtu, err := tunnelMTU(o.mtu, log)
	if err != nil {
		return err
	}
	log.Info("tunnel MTU", zap.Int("mtu", mtu), zap.Bool("auto", o.mtu == 0))

	dev, err := wgtun.Open(wgtun.Config{
		Name: o.iface, MTU: mtu, ListenPort: o.listenPort, FwMark: uint32(o.wgFwmark),
		PrivateKey: key, SocketDir: o.socketDir, Keepalive: o.keepalive, Logger: log.Named("wireguard"),
		OnDemand: o.onDemand, IdleTimeout: o.peerIdle,
		RequirePresharedKey: pqMode != pqpsk.ModeOff,
	})
	if err != nil {
		return fmt.Errorf("open tunnel: %w", err)
	}
	// Closing the device removes its routes; the blackhole routes behind
	// them keep remote pod traffic dropped, not leaked, until the next agent
	// takes over. Everything else stays in place.
	defer func() {
		if err := dev.Close(); err != nil {
			log.Warn("close tunnel", zap.Error(err))
		}
	}()

	var pq *pqAgent // nil unless --post-quantum
	if pqMode != pqpsk.ModeOff {
		if pq, err = newPQAgent(o, pqMode, key, dev, log.Named("pq")); err != nil {
			return err
		}
		defer pq.close()
	}

	rules, err := nft.New(o.nftConfig())
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer rules.Close()

	// The engine reads the device on every full apply; each of the
	// device's own reads feeds the status's handshake tracker, and nothing
	// else does.
	tracker := agentstatus.NewTracker()
	tracker.Watch(dev, o.serve.handshakeTimeout)
	engine, err := proxy.New(o.proxyConfig(), proxy.Deps{
		Rules:   rules,
		Tunnel:  dev,
		Router:  proxy.NewNetlinkRouter(o.proxyConfig(), nil),
		Sysctls: func() ([]string, error) { return proxy.EnsureSysctls("/proc/sys") },
		Log:     log.Named("engine"),
	})
	if err != nil {
		return err
	}

	status := &agentstatus.Source{
		Info: agentstatus.Info{
			Node: o.nodeName, Interface: o.iface, PublicKey: key.PublicKey().String(),
			ListenPort: dev.ListenPort(), MTU: mtu, Strict: o.proxyConfig().Strict, OnDemandPeers: o.onDemand,
			PostQuantum: pqMode.String(), PQRotate: o.pq.rotate,
		},
		Engine: engine, Tunnel: dev, Rules: rules, Tracker: tracker, PQ: pq.status(),
		HandshakeTimeout: o.serve.handshakeTimeout,
	}
	ob, err := o.serve.listen(engine, status, log)
	if err != nil {
		return err
	}
	defer ob.close()

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var src nodeSource
	if o.nodesFile != "" {
		log.Info("agent started; Nodes from a file", zap.String("source", "file"), zap.String("nodes_file", o.nodesFile),
			zap.String("interface", o.iface), zap.Uint16("listen_port", dev.ListenPort()))
		src = &controller.FileSource{
			Path: o.nodesFile, Self: o.nodeName, SelfKey: key.PublicKey(),
			DefaultPort: o.listenPort, Strict: o.strict, Interval: time.Second, Log: log.Named("nodes"),
		}
	} else {
		kc := o.kubeconfig
		if kc == "" {
			kc = "in-cluster"
		}
		log.Info("agent started; Nodes from the Kubernetes API", zap.String("source", "kubernetes"), zap.String("kubeconfig", kc),
			zap.String("interface", o.iface), zap.Uint16("listen_port", dev.ListenPort()))
		src = &controller.KubeSource{
			Client: client.all, Nodes: client.nodes, Self: o.nodeName, SelfKey: key.PublicKey(),
			ListenPort: dev.ListenPort(), DefaultPort: o.listenPort, Strict: o.strict, PQPort: pq.port(), Log: log.Named("nodes"),
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return engine.Run(gctx) })
	g.Go(func() error { return watchDevice(gctx, dev) })
	g.Go(func() error {
		watchTables(gctx, rules, engine.Resync, log.Named("engine"))
		return nil
	})
	if pq != nil {
		g.Go(func() error { return pq.run(gctx) })
	}
	if o.mtu == 0 {
		w := &proxy.MTUWatcher{
			Device: dev, Peers: engine.Peers, Interval: o.resync, Log: log.Named("mtu"),
			Underlay: func(eps []netip.Addr) (int, error) { return proxy.UnderlayMTU(nil, eps) },
		}
		g.Go(func() error { return w.Run(gctx) })
	}
	ob.serve(gctx, g)
	g.Go(func() error {
		return src.Run(gctx, agentSink{engine: engine, status: status, pq: pq})
	})
	err = g.Wait()
	log.Info("agent stopping; datapath left in place (run `crosswire cleanup` to remove it)")
	return err
}

// watchDevice returns an error when the tunnel device stops under the
// agent (wireguard-go closes it when its link is deleted): every later
// apply would fail on a closed device, so the agent exits, and whoever
// runs it (the kubelet, systemd) starts one that opens a new device. The
// blackhole routes drop remote pod traffic meanwhile.
func watchDevice(ctx context.Context, dev *wgtun.Device) error {
	select {
	case <-ctx.Done():
		return nil
	case <-dev.Closed():
		return fmt.Errorf("tunnel device %s closed under the agent (its link deleted?); exiting so that a restart opens a new one", dev.Name())
	}
}
