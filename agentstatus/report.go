package agentstatus

import (
	"fmt"
	"time"
)

// Peer states. The JSON report and the text table use these strings; the
// metric label uses Label(state).
const (
	StateOK             = "ok"
	StateIdle           = "idle"
	StateWaitingForKey  = "waiting for key"
	StateHandshakeStale = "handshake stale"
	StateRejected       = "rejected"
)

// States lists every peer state, in display order.
var States = []string{StateOK, StateIdle, StateWaitingForKey, StateHandshakeStale, StateRejected}

// Report is the agent's status. Its JSON form (`crosswire status -o json`,
// GET /status on the status socket) is stable: fields are only added.
type Report struct {
	Node       string    `json:"node"`
	Time       time.Time `json:"time"`
	Interface  string    `json:"interface"`
	PublicKey  string    `json:"public_key"`
	ListenPort uint16    `json:"listen_port"`
	MTU        int       `json:"mtu"`
	Strict     bool      `json:"strict"`
	// OnDemandPeers is true when WireGuard holds only the peers with
	// recent traffic (--on-demand-peers); PeersConfigured is how many it
	// holds now.
	OnDemandPeers   bool `json:"on_demand_peers"`
	PeersConfigured int  `json:"peers_configured"`
	// ActivationsRefused counts, by reason (wgtun.RefusalReasons), the
	// received datagrams from unconfigured peers' addresses that were not
	// allowed to configure their peer, since the agent started; only with
	// on-demand peers.
	ActivationsRefused map[string]uint64 `json:"activations_refused,omitempty"`
	// HandshakeTimeoutSeconds is the age after which a handshake no longer
	// counts as ok (WireGuard's REJECT_AFTER_TIME, 180 s, by default).
	HandshakeTimeoutSeconds float64 `json:"handshake_timeout_seconds"`

	// Healthy is false when Problems is not empty (see Problems).
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems"`

	Datapath Datapath `json:"datapath"`
	// PostQuantum is absent unless --post-quantum is on or required.
	PostQuantum *PostQuantum `json:"post_quantum,omitempty"`
	Peers       []Peer       `json:"peers"`
	// Sets holds the number of pod CIDRs in each nftables set as the last
	// resync read them back from the kernel: local4, local6, remote4,
	// remote6.
	Sets map[string]int `json:"sets"`
	// MarkCounters are the packet counters of the marking rules as read
	// back from the kernel: egress4, egress6, tunnel_ingress. They restart
	// from 0 whenever the table is replaced.
	MarkCounters map[string]uint64 `json:"mark_counters"`
	// DropCounters are the packet counters of the rules that drop pod
	// traffic rather than let it cross in clear, both families summed:
	// leak_guard (marked for the tunnel, about to leave by another device:
	// policy routing lost), guard_table (local pod to remote pod leaving
	// by another device: crosswire's table lost or edited), strict_ingress
	// (plaintext from a remote pod CIDR, --strict), strict_cluster (to a
	// cluster address no set knows, --cluster-cidrs). Anything but 0 in the
	// first two means another program changed crosswire's routing or
	// table. They restart from 0 whenever a table is replaced.
	DropCounters map[string]uint64 `json:"drop_counters"`
	// Errors lists what could not be read for this report (the device or
	// the table); the rest of the report is still valid.
	Errors []string `json:"errors,omitempty"`
}

// Datapath is the engine's apply state.
type Datapath struct {
	// Known is false until the node source delivered the first state.
	Known bool `json:"known"`
	// Applied is true when the last apply succeeded.
	Applied bool `json:"applied"`
	// LastApply is when the last apply (incremental or full) started.
	LastApply       *time.Time `json:"last_apply,omitempty"`
	LastDurationSec float64    `json:"last_duration_seconds"`
	LastError       string     `json:"last_error,omitempty"`
	Applies         uint64     `json:"applies"`
	Errors          uint64     `json:"errors"`
	DriftRepairs    uint64     `json:"drift_repairs"`
	LastRepairs     []string   `json:"last_repairs,omitempty"`
}

// Peer is one other node: a configured peer or a rejected Node.
type Peer struct {
	Name      string   `json:"name"`
	PublicKey string   `json:"public_key,omitempty"`
	Endpoint  string   `json:"endpoint,omitempty"`
	PodCIDRs  []string `json:"pod_cidrs"`
	// LastHandshake is absent when there has never been one.
	LastHandshake       *time.Time `json:"last_handshake,omitempty"`
	HandshakeAgeSeconds *float64   `json:"handshake_age_seconds,omitempty"`
	RxBytes             uint64     `json:"rx_bytes"`
	TxBytes             uint64     `json:"tx_bytes"`
	State               string     `json:"state"`
	// Configured is true while the peer is on the WireGuard device; with
	// on-demand peers an idle one is not.
	Configured bool `json:"configured"`
	// Reason explains a rejected Node (and is empty otherwise);
	// ReasonGroup is its fixed group, the crosswire_rejected_nodes label.
	Reason      string `json:"reason,omitempty"`
	ReasonGroup string `json:"reason_group,omitempty"`
	// PQ is the peer's post-quantum state; absent when it is off.
	PQ *PeerPQ `json:"pq,omitempty"`
}

// Unhealthy reports whether a peer in this state makes the node unhealthy.
func Unhealthy(state string) bool {
	return state != StateOK && state != StateIdle
}

// problems applies the health rule: the datapath is unhealthy while no
// state is known or applied, when the last apply failed, and while any
// peer is waiting for its key, has a stale handshake or was rejected.
func problems(r *Report) []string {
	var out []string
	switch d := r.Datapath; {
	case !d.Known:
		out = append(out, "no node state yet (node source not synced)")
	case d.Applies == 0:
		out = append(out, "datapath not applied yet")
	case !d.Applied:
		out = append(out, "last apply failed: "+d.LastError)
	}
	for _, p := range r.Peers {
		if Unhealthy(p.State) {
			s := p.State
			if p.Reason != "" {
				s += ": " + p.Reason
			}
			out = append(out, fmt.Sprintf("peer %s: %s", p.Name, s))
		}
	}
	return append(out, pqProblems(r)...)
}

// finish fills Healthy and Problems.
func (r *Report) finish() {
	r.Problems = problems(r)
	if r.Problems == nil {
		r.Problems = []string{}
	}
	r.Healthy = len(r.Problems) == 0
}
