package controller

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// ParseNodeList decodes a Kubernetes NodeList (or a generic v1 List of
// Nodes) in YAML or JSON: the same objects the API server serves, so files
// and the informer share one parser.
func ParseNodeList(data []byte) ([]*corev1.Node, error) {
	if err := singleDocument(data); err != nil {
		return nil, fmt.Errorf("decode NodeList: %w", err)
	}
	var list corev1.NodeList
	if err := yaml.UnmarshalStrict(data, &list); err != nil {
		// A strict decode refuses unknown fields, which a generic v1 List or a
		// `kubectl get nodes -o yaml` dump may carry; retry leniently.
		if err2 := yaml.Unmarshal(data, &list); err2 != nil {
			return nil, fmt.Errorf("decode NodeList: %w", err2)
		}
	}
	// kind is required: an empty, "null" or "{}" file (a truncated write, a
	// wrong path) would otherwise read as a cluster with no nodes and drop
	// every peer. kubectl writes kind after items, so it also catches a dump
	// cut short.
	if list.Kind != "NodeList" && list.Kind != "List" {
		return nil, fmt.Errorf("decode NodeList: kind %q, want NodeList or List", list.Kind)
	}
	if list.APIVersion != "" && list.APIVersion != "v1" {
		return nil, fmt.Errorf("decode NodeList: apiVersion %q, want v1", list.APIVersion)
	}
	nodes := make([]*corev1.Node, 0, len(list.Items))
	seen := map[string]bool{}
	for i := range list.Items {
		n := &list.Items[i]
		if n.Kind != "" && n.Kind != "Node" {
			return nil, fmt.Errorf("decode NodeList: item %d has kind %q", i, n.Kind)
		}
		if n.APIVersion != "" && n.APIVersion != "v1" {
			return nil, fmt.Errorf("decode NodeList: item %d has apiVersion %q", i, n.APIVersion)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("decode NodeList: node %q appears twice", n.Name)
		}
		seen[n.Name] = true
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// singleDocument refuses a YAML stream of several documents: the decoder
// reads only the first, and nodes in the others would silently get no
// tunnel. Empty documents (a leading "---", comments only) do not count.
func singleDocument(data []byte) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	docs := 0
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		var v any
		if err := yaml.Unmarshal(doc, &v); err == nil && v == nil {
			continue
		}
		if docs++; docs > 1 {
			return fmt.Errorf("more than one YAML document; want a single NodeList or List")
		}
	}
	return nil
}
