package controller

import (
	"fmt"
	"slices"
	"testing"
)

// TestRejectionEventsReportedByFew: of all the agents of a cluster, the
// rejected node's own and exactly eventReporters others record the Event
// for a rejected Node, and the duty spreads over the nodes.
func TestRejectionEventsReportedByFew(t *testing.T) {
	var nodes []string
	for i := range 200 {
		nodes = append(nodes, fmt.Sprintf("node-%03d", i))
	}
	duty := map[string]int{}
	for r := range 50 {
		rejected := nodes[r*3]
		var by []string
		for _, self := range nodes {
			if reports(slices.Values(nodes), true, rejected, self) {
				by = append(by, self)
			}
		}
		if len(by) != eventReporters+1 || !slices.Contains(by, rejected) {
			t.Fatalf("%s reported by %v, want itself and %d others", rejected, by, eventReporters)
		}
		for _, n := range by {
			duty[n]++
		}
		// A node that is not in the cluster (yet) reports nothing.
		if reports(slices.Values(nodes), false, rejected, "stranger") {
			t.Fatalf("an unknown node reports %s", rejected)
		}
	}
	if len(duty) < 50 {
		t.Errorf("the duty of reporting 50 rejections fell on %d nodes only", len(duty))
	}
}
