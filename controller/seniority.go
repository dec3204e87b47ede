package controller

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// seniority numbers nodes in the order a source first saw them, for
// Input.Seen: the tie-break between Nodes created in the same second.
// Nodes first seen together are numbered in name order.
type seniority struct {
	seen map[string]uint64
	next uint64
}

func newSeniority() *seniority { return &seniority{seen: map[string]uint64{}} }

// add numbers name if it is new.
func (s *seniority) add(name string) {
	if _, ok := s.seen[name]; !ok {
		s.seen[name] = s.next
		s.next++
	}
}

func (s *seniority) remove(name string) { delete(s.seen, name) }

// sync makes the numbered nodes exactly nodes: the new ones numbered after
// every known one, the gone ones forgotten.
func (s *seniority) sync(nodes []*corev1.Node) {
	present := make(map[string]bool, len(nodes))
	var fresh []string
	for _, n := range nodes {
		if n == nil {
			continue
		}
		present[n.Name] = true
		if _, ok := s.seen[n.Name]; !ok {
			fresh = append(fresh, n.Name)
		}
	}
	for name := range s.seen {
		if !present[name] {
			delete(s.seen, name)
		}
	}
	slices.Sort(fresh)
	for _, name := range slices.Compact(fresh) {
		s.add(name)
	}
}
