package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crosswire/crosswire/agentstatus"
	"github.com/crosswire/crosswire/controller"
)

// TestDocsMetrics: docs/operations.md's metric table names every crosswire
// metric the agent exports, the per-peer ones included, with its type, its
// label and every value that label takes, and nothing else.
func TestDocsMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	src := unhealthySample(t)
	src.PQ = pqSample(t).PQ // the post-quantum metrics too
	src.Info.PostQuantum = "on"
	if _, err := agentstatus.NewMetrics(reg, src, agentstatus.MetricsOptions{PerPeer: true}); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	type exported struct {
		typ    string
		label  string
		values []string
	}
	have := map[string]*exported{}
	for _, mf := range families {
		e := &exported{typ: strings.ToLower(mf.GetType().String())}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				e.label = lp.GetName()
				e.values = append(e.values, lp.GetValue())
			}
		}
		slices.Sort(e.values)
		e.values = slices.Compact(e.values)
		have[mf.GetName()] = e
	}

	documented := map[string]bool{}
	for _, row := range mdTable(t, readDoc(t, "docs/operations.md"), "metric", "type", "labels", "what") {
		names := codeSpans(row[0])
		if len(names) != 1 {
			t.Errorf("metric row %q: want one `name`", row[0])
			continue
		}
		name := names[0]
		documented[name] = true
		e, ok := have[name]
		if !ok {
			t.Errorf("docs/operations.md documents %s, which the agent does not export", name)
			continue
		}
		if row[1] != e.typ {
			t.Errorf("%s: documented as a %s, exported as a %s", name, row[1], e.typ)
		}
		labels := codeSpans(row[2])
		switch {
		case len(labels) == 0 && e.label != "":
			t.Errorf("%s: label %q is not documented", name, e.label)
		case len(labels) > 0 && labels[0] != e.label:
			t.Errorf("%s: documented label %q, exported %q", name, labels[0], e.label)
		case len(labels) > 1: // the label's full set of values is listed
			values := slices.Sorted(slices.Values(labels[1:]))
			if !slices.Equal(values, e.values) {
				t.Errorf("%s{%s}: documented values %v, exported %v", name, e.label, values, e.values)
			}
		}
	}
	for name := range have {
		if strings.HasPrefix(name, "crosswire_") && !documented[name] {
			t.Errorf("%s is missing from docs/operations.md's metric table", name)
		}
	}
}

// TestDocsAnnotations: design.md's annotation table lists exactly the
// annotations the controller reads and writes, and no doc names another.
func TestDocsAnnotations(t *testing.T) {
	known := []string{
		controller.AnnotationPublicKey, controller.AnnotationEndpoint,
		controller.AnnotationEndpointOverride, controller.AnnotationPodCIDRs, controller.AnnotationPQPort,
	}
	var table []string
	for _, row := range mdTable(t, readDoc(t, "docs/design.md"), "annotation", "written by", "meaning") {
		table = append(table, codeSpans(row[0])...)
	}
	slices.Sort(table)
	if want := slices.Sorted(slices.Values(known)); !slices.Equal(table, want) {
		t.Errorf("docs/design.md's annotation table lists %v, the controller knows %v", table, want)
	}
	mention := regexp.MustCompile(`crosswire\\?\.dev/[a-z0-9-]*[a-z0-9]`)
	for _, rel := range docFiles(t) {
		for _, m := range mention.FindAllString(readDoc(t, rel), -1) {
			if m = strings.ReplaceAll(m, `\`, ""); !slices.Contains(known, m) {
				t.Errorf("%s names annotation %s, which crosswire does not know", rel, m)
			}
		}
	}
}
