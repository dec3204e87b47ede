package controller

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
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

// BenchmarkBuild is the rebuild every Node event costs the agent: the
// Nodes in the informer's (random) order, with the agent's parse cache
// ("cached") and without (the nodes file).
func BenchmarkBuild(b *testing.B) {
	for _, cached := range []bool{false, true} {
		for _, n := range []int{100, 1000, 5000} {
			b.Run(fmt.Sprintf("cached=%v/%d", cached, n), func(b *testing.B) { benchBuild(b, n, cached) })
		}
	}
}

func benchBuild(b *testing.B, n int, cached bool) {
	nodes := scaleNodes(n)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	in := Input{Self: "self", DefaultPort: 51820, Nodes: nodes}
	for i, nd := range nodes {
		nd.UID, nd.ResourceVersion = types.UID(fmt.Sprint("uid-", i)), "1"
		if nd.Name == "self" {
			k, err := parseKey(nd.Annotations[AnnotationPublicKey])
			if err != nil {
				b.Fatal(err)
			}
			in.SelfKey = k
		}
	}
	if cached {
		in.Cache = NewParseCache()
	}
	seen := newSeniority()
	seen.sync(in.Nodes)
	in.Seen = seen.seen
	if st := Build(in); len(st.Peers) != n-1 || len(st.Rejected) != 0 {
		b.Fatalf("%d peers, %d rejected: %v", len(st.Peers), len(st.Rejected), st.Rejected)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Build(in)
	}
}
