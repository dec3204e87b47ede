package main

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// The status samples in the docs are rendered from sources built here: real
// Nodes through controller.Build and the agent's own glue, a device and a
// table that answer with fixed figures, and a fixed clock, so the output is
// the code's and the same on every run.

type sampleEngine struct{ st proxy.Status }

func (e sampleEngine) Status() proxy.Status { return e.st }

type sampleTunnel struct{ stats []wgtun.PeerStats }

func (d sampleTunnel) Stats() ([]wgtun.PeerStats, error) { return d.stats, nil }

// LastStats: the resync read the device as it is now.
func (d sampleTunnel) LastStats() (time.Time, []wgtun.PeerStats) { return sampleNow, d.stats }

type sampleRules struct {
	sizes    map[string]int
	counters map[string]nft.Counter
}

func (r sampleRules) Counters() (map[string]nft.Counter, error) { return r.counters, nil }

// LastReadback: the resync read the table as it is now.
func (r sampleRules) LastReadback() nft.Readback {
	return nft.Readback{At: sampleNow, Sizes: r.sizes, Counters: r.counters}
}

// sampleNow is the clock of every sample.
var sampleNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// sampleKey is node i's key pair, fixed so that samples do not change.
func sampleKey(i byte) wgtun.Key {
	return wgtun.Key(bytes.Repeat([]byte{i}, 32)).PublicKey()
}

// sampleNode is a Node as kubelet and the node's agent leave it.
func sampleNode(name string, i byte, podCIDR string, withKey bool) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(sampleNow.Add(-time.Hour))},
		Spec:       corev1.NodeSpec{PodCIDRs: []string{podCIDR}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: netip.AddrFrom4([4]byte{192, 168, 77, 10 + i}).String()},
		}},
	}
	if withKey {
		n.Annotations = map[string]string{controller.AnnotationPublicKey: sampleKey(i).String()}
	}
	return n
}

// sampleSource turns Nodes into what the engine would report, the way the
// agent does (controller.Build, State.Desired, Source.SetRejected).
func sampleSource(t *testing.T, iface string, nodes []*corev1.Node, st proxy.Status, tun sampleTunnel, rules sampleRules) *agentstatus.Source {
	t.Helper()
	state := controller.Build(controller.Input{
		Self: "node1", SelfKey: sampleKey(1), DefaultPort: 51820, Nodes: nodes,
	})
	st.Known = true
	st.Peers = state.Desired().Peers
	src := &agentstatus.Source{
		Info: agentstatus.Info{
			Node: "node1", Interface: iface, PublicKey: sampleKey(1).String(), ListenPort: 51820, MTU: 1440,
		},
		Engine: sampleEngine{st}, Tunnel: tun, Rules: rules, Tracker: agentstatus.NewTracker(),
		Now: func() time.Time { return sampleNow },
	}
	src.SetRejected(state.Rejected)
	return src
}

func peerStats(i byte, endpoint string, handshakeAgo time.Duration, rx, tx uint64) wgtun.PeerStats {
	s := wgtun.PeerStats{RxBytes: rx, TxBytes: tx}
	s.PublicKey = sampleKey(i)
	s.Endpoint = netip.MustParseAddrPort(endpoint)
	if handshakeAgo >= 0 {
		s.LastHandshake = sampleNow.Add(-handshakeAgo)
	}
	return s
}

// healthySample is node1 of `make demo`: two peers, both ok.
func healthySample(t *testing.T) *agentstatus.Source {
	return sampleSource(t, "cwdemo-n1",
		[]*corev1.Node{
			sampleNode("node1", 1, "10.244.1.0/24", true),
			sampleNode("node2", 2, "10.244.2.0/24", true),
			sampleNode("node3", 3, "10.244.3.0/24", true),
		},
		proxy.Status{Applied: true, LastApply: sampleNow.Add(-2 * time.Second), LastDuration: 1580 * time.Microsecond, Applies: 2},
		sampleTunnel{stats: []wgtun.PeerStats{
			peerStats(2, "192.168.77.12:51820", time.Second, 1915, 2355),
			peerStats(3, "192.168.77.13:51820", time.Second, 348, 404),
		}},
		sampleRules{
			sizes:    map[string]int{nft.SetLocal4: 1, nft.SetRemote4: 2},
			counters: map[string]nft.Counter{nft.CommentEgress4: {Packets: 22}, nft.CommentEgress6: {}, nft.CommentTunnelIngress: {Packets: 18}},
		})
}

// unhealthySample has one peer of each kind of trouble: node2's agent
// published a key the device cannot handshake with (it has been sending
// for 10 s), node4 has no agent yet, and bad-cidr's pod CIDR does not
// parse; node3 is fine.
func unhealthySample(t *testing.T) *agentstatus.Source {
	bad := sampleNode("bad-cidr", 51, "10.244.51.0/33", true)
	src := sampleSource(t, "crosswire0",
		[]*corev1.Node{
			sampleNode("node1", 1, "10.244.1.0/24", true),
			sampleNode("node2", 2, "10.244.2.0/24", true),
			sampleNode("node3", 3, "10.244.3.0/24", true),
			sampleNode("node4", 4, "10.244.4.0/24", false),
			bad,
		},
		proxy.Status{Applied: true, LastApply: sampleNow, LastDuration: 874 * time.Microsecond, Applies: 18},
		sampleTunnel{stats: []wgtun.PeerStats{
			peerStats(2, "192.168.77.12:51820", -1, 0, 296),
			peerStats(3, "192.168.77.13:51820", 16*time.Second, 2611, 2519),
		}},
		sampleRules{
			sizes:    map[string]int{nft.SetLocal4: 1, nft.SetRemote4: 2},
			counters: map[string]nft.Counter{nft.CommentEgress4: {Packets: 51}, nft.CommentEgress6: {}, nft.CommentTunnelIngress: {Packets: 45}},
		})
	// The device was first seen sending to node2 ten seconds ago.
	src.Tracker.Observe(sampleNow.Add(-10*time.Second), []wgtun.PeerStats{peerStats(2, "192.168.77.12:51820", -1, 0, 148)},
		agentstatus.DefaultHandshakeTimeout)
	return src
}
