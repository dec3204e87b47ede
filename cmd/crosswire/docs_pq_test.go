package main

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/pqpsk"
	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// samplePQ is a post-quantum manager's view, fixed for the samples.
type samplePQ struct {
	peers    []pqpsk.PeerStatus
	counters pqpsk.Counters
}

func (s samplePQ) Status() []pqpsk.PeerStatus { return s.peers }
func (s samplePQ) Counters() pqpsk.Counters   { return s.counters }
func (s samplePQ) StateCounts() map[pqpsk.State]int {
	out := map[pqpsk.State]int{}
	for _, p := range s.peers {
		out[p.State]++
	}
	return out
}

// pqSample is the healthy demo node with --post-quantum=on: node2's key
// was agreed 37 s ago (epoch 41), node3 has not agreed one for twice the
// rotation interval and failed closed.
func pqSample(t *testing.T) *agentstatus.Source {
	src := sampleSource(t, "cwdemo-n1",
		[]*corev1.Node{
			sampleNode("node1", 1, "10.244.1.0/24", true),
			sampleNode("node2", 2, "10.244.2.0/24", true),
			sampleNode("node3", 3, "10.244.3.0/24", true),
		},
		proxy.Status{Applied: true, LastApply: sampleNow.Add(-2 * time.Second), LastDuration: 1580 * time.Microsecond, Applies: 2},
		sampleTunnel{stats: []wgtun.PeerStats{
			peerStats(2, "192.168.77.12:51820", time.Second, 1915, 2355),
			// Re-created when it failed closed: no session since.
			peerStats(3, "192.168.77.13:51820", -1, 0, 0),
		}},
		sampleRules{
			sizes:    map[string]int{nft.SetLocal4: 1, nft.SetRemote4: 2},
			counters: map[string]nft.Counter{nft.CommentEgress4: {Packets: 22}, nft.CommentEgress6: {}, nft.CommentTunnelIngress: {Packets: 18}},
		})
	src.Info.PostQuantum, src.Info.PQRotate = "on", 2*time.Minute
	src.PQ = samplePQ{
		peers: []pqpsk.PeerStatus{
			{Key: pqpsk.Key(sampleKey(2)), State: pqpsk.StatePQ, Epoch: 41, Age: 37 * time.Second, Initiator: true},
			{Key: pqpsk.Key(sampleKey(3)), State: pqpsk.StateClosed, Epoch: 40, Reason: "no PSK agreed for 4m0s"},
		},
		counters: pqpsk.Counters{Exchanges: 81, FailClosed: 1, Rejected: map[string]uint64{"attempt timed out": 48}},
	}
	return src
}
