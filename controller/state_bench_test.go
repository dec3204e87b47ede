package controller

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/crosswire/crosswire/wgtun"
)

// scaleNodes returns n Nodes as a large cluster has them: one /24 pod CIDR
// and one InternalIP each, a distinct key, creation times a second apart.
// The first is "self".
func scaleNodes(n int) []*corev1.Node {
	nodes := make([]*corev1.Node, 0, n)
	for i := range n {
		name := fmt.Sprintf("node-%05d", i)
		if i == 0 {
			name = "self"
		}
		var raw [32]byte
		binary.BigEndian.PutUint32(raw[:], uint32(i+1))
		raw[31] = 1
		nodes = append(nodes, mkNode(name, created(i),
			withKey(base64.StdEncoding.EncodeToString(raw[:])),
			withIP(fmt.Sprintf("192.168.%d.%d", i/250, 1+i%250)),
			withPodCIDR(fmt.Sprintf("10.%d.%d.0/24", 1+i/256, i%256))))
	}
	return nodes
}

// BenchmarkBuild is a full rebuild (the start, the periodic check, the
// nodes file): the Nodes in the informer's (random) order.
func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			nodes, selfKey := benchNodes(b, n)
			seen := newSeniority()
			seen.sync(nodes)
			in := Input{Self: "self", SelfKey: selfKey, DefaultPort: 51820, Nodes: nodes, Seen: seen.seen}
			if st := Build(in); len(st.Peers) != n-1 || len(st.Rejected) != 0 {
				b.Fatalf("%d peers, %d rejected: %v", len(st.Peers), len(st.Rejected), st.Rejected)
			}
			b.ReportAllocs()
			for b.Loop() {
				Build(in)
			}
		})
	}
}

// BenchmarkNodeEvent is what one Node event costs the controller at each
// cluster size: a peer's key changes (alternating between two values), the
// Tracker decides it and returns the Change. Time and allocations per
// event must not grow with the cluster (compare the sizes).
func BenchmarkNodeEvent(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			nodes, selfKey := benchNodes(b, n)
			tr := NewTracker("self", selfKey, 51820, false)
			if st := tr.Reset(nodes); len(st.Peers) != n-1 {
				b.Fatalf("%d peers", len(st.Peers))
			}
			target := nodes[n/2]
			versions := [2]*corev1.Node{target.DeepCopy(), target.DeepCopy()}
			versions[1].Annotations[AnnotationPublicKey] = testKey(0xfe)
			b.ReportAllocs()
			i := 1 // versions[0] is what the tracker holds
			for b.Loop() {
				c := tr.Set(target.Name, versions[i%2])
				if len(c.Upsert) != 1 {
					b.Fatalf("change %+v", c)
				}
				i++
			}
		})
	}
}

func benchNodes(b *testing.B, n int) ([]*corev1.Node, wgtun.Key) {
	nodes := scaleNodes(n)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	var selfKey wgtun.Key
	for i, nd := range nodes {
		nd.UID, nd.ResourceVersion = types.UID(fmt.Sprint("uid-", i)), "1"
		if nd.Name == "self" {
			k, err := parseKey(nd.Annotations[AnnotationPublicKey])
			if err != nil {
				b.Fatal(err)
			}
			selfKey = k
		}
	}
	return nodes, selfKey
}
