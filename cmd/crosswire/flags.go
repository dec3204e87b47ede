package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/proxy"
)

// options are the flags shared by the agent and the cleanup and pubkey
// commands, so cleanup finds exactly what the agent created.
type options struct {
	nodeName     string
	stateDir     string
	socketDir    string
	iface        string
	listenPort   uint16
	mtu          int
	mark         hexUint32
	mask         hexUint32
	wgFwmark     hexUint32
	table        int
	rulePriority int
	nftTable     string
	resync       time.Duration
	keepalive    int
	logLevel     string
	nodesFile    string
	kubeconfig   string
	serve        serveOptions // serve.go: metrics, health, status socket
	strict       bool
	clusterCIDRs prefixList
	onDemand     bool
	peerIdle     time.Duration
	pq           pqOptions // pq.go: --post-quantum, --pq-port, --pq-rotate
}

func defaultOptions() options {
	return options{
		nodeName:     os.Getenv("NODE_NAME"),
		stateDir:     "/var/lib/crosswire",
		socketDir:    "/var/run/wireguard",
		iface:        "crosswire0",
		listenPort:   51820,
		mtu:          0,
		mark:         0x1000,
		mask:         0x1000,
		wgFwmark:     0x2000,
		table:        202,
		rulePriority: 1200,
		nftTable:     "crosswire",
		resync:       30 * time.Second,
		keepalive:    0,
		peerIdle:     5 * time.Minute,
		logLevel:     "info",
		serve:        defaultServeOptions(),
		pq:           defaultPQOptions(),
	}
}

func (o *options) datapathFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.stateDir, "state-dir", o.stateDir, "directory for the node's private key (persistent host storage, 0700)")
	fs.StringVar(&o.socketDir, "socket-dir", o.socketDir, "directory of the WireGuard UAPI socket <interface>.sock (wg show looks in /var/run/wireguard)")
	fs.StringVar(&o.iface, "interface", o.iface, "name of the WireGuard tunnel device")
	fs.Var(&o.mark, "mark", "fwmark bit(s) set on pod traffic to remote pods")
	fs.Var(&o.mask, "mask", "fwmark bits crosswire owns (must contain --mark)")
	fs.IntVar(&o.table, "table", o.table, "routing table for remote pod CIDRs")
	fs.IntVar(&o.rulePriority, "rule-priority", o.rulePriority, "priority of the fwmark policy rule (before main, 32766)")
	fs.StringVar(&o.nftTable, "nft-table", o.nftTable, "name of crosswire's nftables table (family inet)")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "debug, info, warn or error")
}

func (o *options) proxyConfig() proxy.Config {
	return proxy.Config{
		Table: o.table, RulePriority: o.rulePriority,
		Mark: uint32(o.mark), Mask: uint32(o.mask),
		TunnelIface: o.iface, ResyncInterval: o.resync,
		Strict: o.strict,
	}
}

func (o *options) nftConfig() nft.Config {
	return nft.Config{Table: o.nftTable, Mark: uint32(o.mark), Mask: uint32(o.mask), TunnelIface: o.iface, Strict: o.strict, ClusterCIDRs: o.clusterCIDRs}
}

func (o *options) keyFile() string { return filepath.Join(o.stateDir, "private.key") }

// validate checks what the engine and the ruleset do not: the tunnel's own
// packets must never match the policy rule, or they would loop.
func (o *options) validate() error {
	if err := o.proxyConfig().Validate(); err != nil {
		return err
	}
	if err := o.nftConfig().Validate(); err != nil {
		return err
	}
	if uint32(o.wgFwmark)&uint32(o.mask) == uint32(o.mark) {
		return fmt.Errorf("--wg-fwmark %#x matches the policy rule (fwmark %#x/%#x): the tunnel's packets would loop", uint32(o.wgFwmark), uint32(o.mark), uint32(o.mask))
	}
	if o.mtu != 0 && (o.mtu < 576 || o.mtu > 65535) {
		return fmt.Errorf("--mtu %d: must be 0 (auto) or in 576..65535", o.mtu)
	}
	if o.keepalive < 0 || o.keepalive > 65535 {
		return fmt.Errorf("--keepalive %d: must be in 0..65535 seconds", o.keepalive)
	}
	if o.peerIdle < 10*time.Second {
		// Below WireGuard's own timers (a handshake every 2 min under
		// traffic, keepalive 10 s) a busy peer could be trimmed between two
		// checks of its counters.
		return fmt.Errorf("--peer-idle-timeout %v: must be at least 10s", o.peerIdle)
	}
	return nil
}

// prefixList is a flag of comma-separated CIDRs; it may be repeated.
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
func (l *prefixList) Type() string { return "cidrs" }
func (l *prefixList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return fmt.Errorf("not a CIDR: %q", f)
		}
		if p != p.Masked() {
			return fmt.Errorf("%s has host bits set (did you mean %s?)", p, p.Masked())
		}
		*l = append(*l, p)
	}
	return nil
}

// hexUint32 is a flag that accepts 0x1000, 4096 or 0o10000.
type hexUint32 uint32

func (h *hexUint32) String() string { return fmt.Sprintf("%#x", uint32(*h)) }
func (h *hexUint32) Type() string   { return "uint32" }
func (h *hexUint32) Set(s string) error {
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return fmt.Errorf("not a 32-bit number: %q", s)
	}
	*h = hexUint32(v)
	return nil
}
