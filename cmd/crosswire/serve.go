package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/proxy"
)

// DefaultStatusSocket is where the agent serves its status and `crosswire
// status` reads it.
const DefaultStatusSocket = "/var/run/crosswire/status.sock"

// serveOptions are the agent's observability flags.
type serveOptions struct {
	metricsPort      int
	metricsPerPeer   bool
	statusSocket     string
	handshakeTimeout time.Duration
}

func defaultServeOptions() serveOptions {
	return serveOptions{metricsPort: 9763, statusSocket: DefaultStatusSocket, handshakeTimeout: agentstatus.DefaultHandshakeTimeout}
}

func (s *serveOptions) flags(fs *pflag.FlagSet) {
	fs.IntVar(&s.metricsPort, "metrics-port", s.metricsPort, "HTTP port (all addresses) for /metrics, /healthz and /readyz; 0 disables")
	fs.BoolVar(&s.metricsPerPeer, "metrics-per-peer", s.metricsPerPeer, "also export three series per peer (last handshake, bytes each way): 3N² series in a cluster of N nodes; off, peers are aggregated")
	fs.StringVar(&s.statusSocket, "status-socket", s.statusSocket, "unix socket (0600) serving the status that \"crosswire status\" reads; empty disables")
	fs.DurationVar(&s.handshakeTimeout, "handshake-timeout", s.handshakeTimeout, "age after which a peer's handshake no longer counts as ok (WireGuard's REJECT_AFTER_TIME)")
	_ = fs.MarkHidden("handshake-timeout")
}

func (s *serveOptions) validate() error {
	if s.metricsPort < 0 || s.metricsPort > 65535 {
		return fmt.Errorf("--metrics-port %d: must be in 0..65535", s.metricsPort)
	}
	if s.handshakeTimeout <= 0 {
		return fmt.Errorf("--handshake-timeout %v: must be positive", s.handshakeTimeout)
	}
	return nil
}

// observability holds the agent's listeners, opened before the datapath
// starts so a taken port fails the agent at once.
type observability struct {
	metrics, status net.Listener
	statusPath      string
	registry        *prometheus.Registry
	metricsView     *agentstatus.Metrics
	source          *agentstatus.Source
	engine          *proxy.Engine
	log             *zap.Logger
}

// listen opens the metrics port and the status socket, registers the
// metrics for src and hooks the reconcile metrics into the engine.
func (s *serveOptions) listen(engine *proxy.Engine, src *agentstatus.Source, log *zap.Logger) (*observability, error) {
	ob := &observability{registry: prometheus.NewRegistry(), source: src, engine: engine, log: log}
	m, err := agentstatus.NewMetrics(ob.registry, src, agentstatus.MetricsOptions{PerPeer: s.metricsPerPeer})
	if err != nil {
		return nil, err
	}
	ob.metricsView = m
	if err := ob.registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := ob.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	engine.OnApply(m.ObserveApply)
	if s.metricsPort != 0 {
		if ob.metrics, err = net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(s.metricsPort))); err != nil {
			return nil, fmt.Errorf("metrics port: %w", err)
		}
	}
	if s.statusSocket != "" {
		ob.statusPath = s.statusSocket
		if ob.status, err = agentstatus.ListenStatusSocket(s.statusSocket); err != nil {
			ob.close()
			return nil, err
		}
	}
	return ob, nil
}

func (ob *observability) close() {
	for _, l := range []net.Listener{ob.metrics, ob.status} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// serve runs the servers in g until ctx ends.
func (ob *observability) serve(ctx context.Context, g *errgroup.Group) {
	if ob.metrics != nil {
		ob.log.Info("serving metrics and health", zap.String("address", ob.metrics.Addr().String()))
		// Scrapes are served from a snapshot this rebuilds after applies.
		g.Go(func() error { return ob.metricsView.Run(ctx) })
		g.Go(func() error {
			return agentstatus.Serve(ctx, ob.metrics, agentstatus.Handler(ob.registry, ob.engine))
		})
	}
	if ob.status != nil {
		ob.log.Info("serving status", zap.String("socket", ob.statusPath))
		g.Go(func() error {
			err := agentstatus.Serve(ctx, ob.status, agentstatus.StatusHandler(ob.source))
			_ = ob.status.Close()
			return err
		})
	}
}
