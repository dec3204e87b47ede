package controller

import (
	"hash/fnv"
	"iter"

	"k8s.io/apimachinery/pkg/types"
)

// eventReporters is how many agents record the Event for a rejected Node.
// Every agent sees the same rejection; if each recorded it, a bad Node
// would cost one Event per node of the cluster. A few, so that an Event
// still appears when one of them is down.
const eventReporters = 2

// reporters reports whether the agent of node self is one of those that
// record Events about the rejection of node rejected: the node itself (its
// operator looks there first) and the eventReporters nodes that rank
// highest for it by rendezvous hashing among the nodes that run an agent
// (this one, and the peers: accepted Nodes with a published key). Every
// agent computes the same ranking from the same Nodes, with no
// coordination, and a node joining or leaving moves the duty of few
// rejected Nodes.
func (t *Tracker) reporters(rejected, self string) bool {
	_, known := t.nodes[self]
	agents := func(yield func(string) bool) {
		for name, p := range t.peers {
			if !p.PublicKey.IsZero() && !yield(name) {
				return
			}
		}
	}
	return reports(agents, known && !t.selfKey.IsZero(), rejected, self)
}

// reports is reporters over the names of the nodes that run an agent;
// known says self runs one (and may be among them).
func reports(nodes iter.Seq[string], known bool, rejected, self string) bool {
	if rejected == self {
		return true
	}
	if !known {
		return false
	}
	mine := rendezvous(self, rejected)
	higher := 0
	for name := range nodes {
		if name == self || name == rejected {
			continue
		}
		if h := rendezvous(name, rejected); h > mine || (h == mine && name < self) {
			if higher++; higher >= eventReporters {
				return false
			}
		}
	}
	return true
}

func rendezvous(node, rejected string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	h.Write([]byte{0})
	h.Write([]byte(rejected))
	// FNV mixes a late byte into the high bits poorly, and names differ
	// in their last bytes: finish with murmur3's avalanche step.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// has reports whether the tracker holds a Node of that name.
func (t *Tracker) has(name string) bool {
	_, ok := t.nodes[name]
	return ok
}

// uid is the UID of the Node of that name, "" if none.
func (t *Tracker) uid(name string) types.UID {
	if tn, ok := t.nodes[name]; ok {
		return tn.n.UID
	}
	return ""
}
