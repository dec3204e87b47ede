package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/test/netcluster"
)

// BenchmarkNodeEventToDatapath measures, against a real kube-apiserver,
// the time from a Node update (node3 gains a pod CIDR) to that CIDR being
// in node1's remote4 set: API write, watch event, the agent's rebuild and
// ordered apply (WireGuard peer, route, set element). Reported as p50, p99
// and max in milliseconds; the set is polled through netlink every 200 µs.
//
//	make bench   (or: go test -run '^$' -bench NodeEvent -benchtime 50x ./test/e2e/)
func BenchmarkNodeEventToDatapath(b *testing.B) {
	e := newKubeEnv(b, netcluster.Options{Nodes: 3, PodsPerNode: 1}, 3)
	n1, n3 := e.c.Nodes[0], e.c.Nodes[2]
	ns, err := netns.GetFromName(n1.NS)
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		b.Fatal(err)
	}
	table := &nftables.Table{Name: "crosswire", Family: nftables.TableFamilyINet}
	set, err := conn.GetSetByName(table, "remote4")
	if err != nil {
		b.Fatal(err)
	}
	nodes := e.Kube.Admin.CoreV1().Nodes()

	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		extra := net.IPv4(10, 250, byte(i%250), 0).To4()
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"%s,10.250.%d.0/24"}}}`,
			controller.AnnotationPodCIDRs, n3.PodCIDR, i%250)
		start := time.Now()
		if _, err := nodes.Patch(context.Background(), n3.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			b.Fatal(err)
		}
		for {
			elems, err := conn.GetSetElements(set)
			if err != nil {
				b.Fatal(err)
			}
			if slices.ContainsFunc(elems, func(el nftables.SetElement) bool {
				return !el.IntervalEnd && net.IP(el.Key).Equal(extra)
			}) {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("10.250.%d.0/24 not applied on node1 within 10s", i%250)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}
