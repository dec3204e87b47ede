package soak

import (
	"math/rand/v2"
	"time"
)

// Soak timers. The agents run with a short resync so drift heals within
// seconds; every bound below is derived from these and WireGuard's own
// timers, and docs/reliability.md states each one.
const (
	// Resync is the agents' --resync-interval: drift repair, the MTU
	// watcher and peer state all run on it.
	Resync = 5 * time.Second
	// RekeyTimeout is WireGuard's REKEY_TIMEOUT: a handshake initiation
	// that gets no answer is retried after it (plus up to 333 ms jitter).
	RekeyTimeout = 5 * time.Second
	// agentStart is a budget for a restarted agent to list Nodes, create
	// its device and apply (about a second on an idle machine; the soak
	// shares 2 cores with the API server, etcd and the traffic).
	agentStart = 5 * time.Second
	// watchBackoff is client-go's reflector backoff at its worst: 30 s
	// cap times jitter factor 2 (the backoff is not reset between outages
	// less than 2 minutes apart, so repeated outages reach the cap).
	watchBackoff = 60 * time.Second
)

// apiUse says how a fault relates to the API server: faults that break it
// run alone with respect to faults whose healing needs it.
type apiUse int

const (
	apiNone      apiUse = iota
	apiNeeds            // heals only through the API server (agent start, Node changes)
	apiExclusive        // breaks the API server
)

// Kind is one kind of fault.
type Kind struct {
	Name string
	// Bound is the longest a heal may take, from the moment the fault is
	// lifted (or, for drift, made) until traffic flows again and the
	// agent's state is repaired.
	Bound time.Duration
	API   apiUse
	// Target picks which nodes a fault may hit: none (cluster-wide), one
	// base node, a pair (peer removal), or the spare node (join).
	Target target
	// NoControl keeps the fault off the control node (node1), whose agent
	// must live through the whole run so its growth can be measured.
	NoControl bool
	// Hold is the range of how long the fault stays before it is lifted
	// (0: lifted at once, or heals by itself).
	Hold [2]time.Duration
}

type target int

const (
	targetNone target = iota
	targetNode
	targetPair
	targetSpare
)

// Kinds lists every fault the soak injects, with its heal bound.
var Kinds = []Kind{
	// Agent restarts: the new process lists Nodes, recreates the device
	// and applies; the first packet then needs one handshake, which may be
	// lost once while the peer's side is still being set up.
	{Name: "agent-sigkill", Bound: agentStart + 2*RekeyTimeout, API: apiNeeds, Target: targetNode, NoControl: true, Hold: [2]time.Duration{0, 2 * time.Second}},
	{Name: "agent-sigterm", Bound: agentStart + 2*RekeyTimeout, API: apiNeeds, Target: targetNode, NoControl: true, Hold: [2]time.Duration{0, 2 * time.Second}},
	{Name: "agent-upgrade", Bound: agentStart + 2*RekeyTimeout, API: apiNeeds, Target: targetNode, NoControl: true, Hold: [2]time.Duration{0, time.Second}},
	// A new key: the agent publishes it at start, every peer applies it
	// from its watch event, then one handshake.
	{Name: "rekey", Bound: agentStart + 2*RekeyTimeout, API: apiNeeds, Target: targetNode, NoControl: true},
	// Someone else's key on a Node: the owner's agent sees the update of
	// its own Node and publishes its key again; peers follow the events.
	{Name: "annotation-tamper", Bound: 2 * RekeyTimeout, API: apiNeeds, Target: targetNode},
	// A Node deleted and registered again (as a kubelet would): the agent
	// republishes on the add event, peers apply.
	{Name: "node-delete-readd", Bound: 2 * RekeyTimeout, API: apiNeeds, Target: targetNode, Hold: [2]time.Duration{time.Second, 3 * time.Second}},
	// A node joins (the spare: built at its first join, a fresh key every
	// time), stays a while, then leaves.
	{Name: "node-join", Bound: agentStart + 2*RekeyTimeout, API: apiNeeds, Target: targetSpare, Hold: [2]time.Duration{10 * time.Second, 25 * time.Second}},
	// The API server and etcd: the datapath never depends on them; heal
	// is the agents' watches delivering a change again.
	{Name: "apiserver-stop", Bound: watchBackoff + Resync, API: apiExclusive, Hold: [2]time.Duration{3 * time.Second, 8 * time.Second}},
	{Name: "apiserver-pause", Bound: watchBackoff + Resync, API: apiExclusive, Hold: [2]time.Duration{3 * time.Second, 8 * time.Second}},
	{Name: "apiserver-restart", Bound: watchBackoff + Resync, API: apiExclusive},
	{Name: "etcd-restart", Bound: watchBackoff + Resync, API: apiExclusive},
	// Drift made by hand behind the agent: repaired on the next resync,
	// then (after a removed peer or device) one handshake.
	{Name: "nft-flush", Bound: Resync + 2*RekeyTimeout, Target: targetNode},
	{Name: "ip-rule-delete", Bound: Resync + 2*RekeyTimeout, Target: targetNode},
	{Name: "routes-delete", Bound: Resync + 2*RekeyTimeout, Target: targetNode},
	{Name: "wg-peer-remove", Bound: Resync + 2*RekeyTimeout, Target: targetPair},
	{Name: "tunnel-link-delete", Bound: Resync + agentStart + 2*RekeyTimeout, API: apiNeeds, Target: targetNode, NoControl: true},
	// The underlay: sessions survive; a handshake attempted meanwhile is
	// retried after REKEY_TIMEOUT.
	{Name: "underlay-flap", Bound: 2 * RekeyTimeout, Target: targetNode, Hold: [2]time.Duration{time.Second, 4 * time.Second}},
	{Name: "underlay-loss30", Bound: 2 * RekeyTimeout, Target: targetNode, Hold: [2]time.Duration{5 * time.Second, 15 * time.Second}},
	// The underlay MTU shrinks and grows back: the MTU watcher follows on
	// its resync tick, each way.
	{Name: "underlay-mtu", Bound: Resync + 2*time.Second, Target: targetNode, Hold: [2]time.Duration{3 * time.Second, 6 * time.Second}},
}

// KindByName returns the kind called name.
func KindByName(name string) (Kind, bool) {
	for _, k := range Kinds {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// Fault is one planned fault.
type Fault struct {
	Seq  int
	Kind Kind
	// Node and Peer are base-node indexes (1-based; 0 = none). Peer is set
	// for a pair fault: Node loses its WireGuard peer Peer.
	Node, Peer int
	Hold       time.Duration
	// Gap is how long the runner waits after starting the previous fault
	// before it starts this one (and then, if a running fault holds the
	// same nodes or the API server, until that one is done).
	Gap time.Duration
}

// Plan draws the fault schedule from seed: rounds in which every kind
// occurs once, in a shuffled order, each fault with a random target, hold
// and gap. The same seed gives the same schedule; the runner takes faults
// from it until the soak time is up.
func Plan(seed uint64, kinds []Kind, nodes, rounds int) []Fault {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out []Fault
	for range rounds {
		for _, i := range rng.Perm(len(kinds)) {
			k := kinds[i]
			f := Fault{Seq: len(out) + 1, Kind: k}
			first := 1
			if k.NoControl {
				first = 2
			}
			switch k.Target {
			case targetNode:
				f.Node = first + rng.IntN(nodes-first+1)
			case targetPair:
				f.Node = 1 + rng.IntN(nodes)
				f.Peer = 1 + rng.IntN(nodes-1)
				if f.Peer >= f.Node {
					f.Peer++
				}
			case targetSpare:
				f.Node = nodes + 1
			}
			f.Hold = between(rng, k.Hold[0], k.Hold[1])
			f.Gap = between(rng, 300*time.Millisecond, 3*time.Second)
			out = append(out, f)
		}
	}
	return out
}

// between is uniform in [lo, hi], rounded to 100 ms.
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	d := lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	return d.Round(100 * time.Millisecond)
}

// Nodes lists the nodes a fault holds while it runs.
func (f Fault) Nodes() []int {
	switch {
	case f.Node == 0:
		return nil
	case f.Peer != 0:
		return []int{f.Node, f.Peer}
	default:
		return []int{f.Node}
	}
}

// conflicts says whether f may not run while g runs: they share a node, or
// one breaks the API server and the other needs it or breaks it too.
func (f Fault) conflicts(g Fault) bool {
	for _, a := range f.Nodes() {
		for _, b := range g.Nodes() {
			if a == b {
				return true
			}
		}
	}
	if f.Kind.API == apiExclusive && g.Kind.API != apiNone || g.Kind.API == apiExclusive && f.Kind.API != apiNone {
		return true
	}
	return false
}
