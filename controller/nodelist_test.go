package controller

import (
	"slices"
	"strings"
	"testing"

	"github.com/crosswire/crosswire/proxy"
)

const kubectlDump = `apiVersion: v1
items:
- apiVersion: v1
  kind: Node
  metadata:
    annotations:
      crosswire.dev/endpoint: 192.168.77.11:51820
      crosswire.dev/public-key: AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=
      node.alpha.kubernetes.io/ttl: "0"
      volumes.kubernetes.io/controller-managed-attach-detach: "true"
    creationTimestamp: "2024-05-01T10:00:00Z"
    labels:
      beta.kubernetes.io/arch: amd64
      kubernetes.io/hostname: node-a
      node-role.kubernetes.io/control-plane: ""
    managedFields:
    - apiVersion: v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:annotations:
            .: {}
            f:crosswire.dev/public-key: {}
      manager: crosswire
      operation: Update
      time: "2024-05-01T10:00:05Z"
    name: node-a
    resourceVersion: "12345"
    uid: 6f1e2d3c-0000-4000-8000-000000000001
  spec:
    podCIDR: 10.244.1.0/24
    podCIDRs:
    - 10.244.1.0/24
    - fd00:10:244:1::/64
    providerID: kind://docker/kind/node-a
    taints:
    - effect: NoSchedule
      key: node-role.kubernetes.io/control-plane
  status:
    addresses:
    - address: 192.168.77.11
      type: InternalIP
    - address: node-a
      type: Hostname
    allocatable:
      cpu: "8"
      memory: 16Gi
      pods: "110"
    capacity:
      cpu: "8"
      memory: 16Gi
      pods: "110"
    conditions:
    - lastHeartbeatTime: "2024-05-01T11:00:00Z"
      lastTransitionTime: "2024-05-01T10:00:00Z"
      message: kubelet is posting ready status
      reason: KubeletReady
      status: "True"
      type: Ready
    daemonEndpoints:
      kubeletEndpoint:
        Port: 10250
    images:
    - names:
      - registry.k8s.io/pause:3.9
      sizeBytes: 321520
    nodeInfo:
      architecture: amd64
      bootID: x
      containerRuntimeVersion: containerd://1.7.1
      kernelVersion: 6.1.0
      kubeProxyVersion: v1.30.0
      kubeletVersion: v1.30.0
      machineID: x
      operatingSystem: linux
      osImage: Debian GNU/Linux 12
      systemUUID: x
    someFieldFromTheFuture: true
- apiVersion: v1
  kind: Node
  metadata:
    creationTimestamp: "2024-05-02T10:00:00Z"
    name: node-b
  spec:
    podCIDR: 10.244.2.0/24
  status:
    addresses:
    - address: 192.168.77.12
      type: InternalIP
kind: List
metadata:
  resourceVersion: ""
`

const jsonList = `{"apiVersion":"v1","kind":"NodeList","metadata":{},"items":[
 {"metadata":{"name":"a","annotations":{"crosswire.dev/pod-cidrs":"10.244.1.0/24"}}},
 {"kind":"Node","apiVersion":"v1","metadata":{"name":"b"},"spec":{"podCIDRs":["10.244.2.0/24"]}}]}`

const yamlList = `apiVersion: v1
kind: NodeList
items:
- metadata: {name: a}
  spec: {podCIDR: 10.244.1.0/24}
- metadata:
    name: b
    annotations: {crosswire.dev/endpoint: "[fd00::2]:51820"}
`

func TestParseNodeList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // node names in order
		wantErr string
	}{
		{name: "yaml NodeList", in: yamlList, want: []string{"a", "b"}},
		{name: "json NodeList", in: jsonList, want: []string{"a", "b"}},
		{name: "kubectl get nodes -o yaml", in: kubectlDump, want: []string{"node-a", "node-b"}},
		{name: "empty NodeList", in: "kind: NodeList\napiVersion: v1\nitems: []\n", want: []string{}},
		{name: "List without items", in: "kind: List\n", want: []string{}},
		{name: "empty file", in: "", wantErr: `kind ""`},
		{name: "whitespace file", in: " \n\n", wantErr: `kind ""`},
		{name: "null", in: "null\n", wantErr: `kind ""`},
		{name: "empty object", in: "{}", wantErr: `kind ""`},
		{name: "missing kind", in: "items:\n- metadata: {name: a}\n", wantErr: `kind ""`},
		{name: "kubectl dump cut before kind", in: kubectlDump[:strings.Index(kubectlDump, "- apiVersion: v1\n  kind: Node\n  metadata:\n    creationTimestamp: \"2024-05-02")], wantErr: `kind ""`},
		{name: "wrong kind", in: "kind: PodList\nitems: []\n", wantErr: `kind "PodList", want NodeList or List`},
		{name: "single Node", in: "kind: Node\nmetadata: {name: a}\n", wantErr: `kind "Node"`},
		{name: "wrong apiVersion", in: "apiVersion: apps/v1\nkind: List\nitems: []\n", wantErr: `apiVersion "apps/v1"`},
		{name: "List with a Pod", in: "kind: List\nitems:\n- kind: Node\n  metadata: {name: a}\n- kind: Pod\n  metadata: {name: p}\n", wantErr: `item 1 has kind "Pod"`},
		{name: "item wrong apiVersion", in: "kind: List\nitems:\n- apiVersion: v2\n  kind: Node\n  metadata: {name: a}\n", wantErr: `item 0 has apiVersion "v2"`},
		{name: "duplicate names", in: "kind: NodeList\nitems:\n- metadata: {name: a}\n- metadata: {name: b}\n- metadata: {name: a}\n", wantErr: `node "a" appears twice`},
		{name: "leading separator and comments", in: "# nodes\n---\n" + yamlList + "---\n# end\n", want: []string{"a", "b"}},
		{name: "two documents", in: yamlList + "---\nkind: NodeList\nitems:\n- metadata: {name: c}\n", wantErr: "more than one YAML document"},
		{name: "Node after NodeList", in: yamlList + "---\nkind: Node\nmetadata: {name: c}\n", wantErr: "more than one YAML document"},
		{name: "garbage", in: "this is: [not, a: nodelist", wantErr: "decode NodeList"},
		{name: "binary", in: "\x00\x01\x02\xff", wantErr: "decode NodeList"},
		{name: "yaml sequence", in: "- a\n- b\n", wantErr: "decode NodeList"},
		{name: "scalar", in: "hello", wantErr: "decode NodeList"},
		{name: "items not a list", in: "kind: NodeList\nitems: 3\n", wantErr: "decode NodeList"},
		{name: "truncated json", in: jsonList[:len(jsonList)-10], wantErr: "decode NodeList"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes, err := ParseNodeList([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
			if tt.wantErr != "" {
				if nodes != nil {
					t.Errorf("nodes returned with an error")
				}
				return
			}
			names := []string{}
			for _, n := range nodes {
				names = append(names, n.Name)
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("names %q, want %q", names, tt.want)
			}
		})
	}
}

// TestParseNodeListToState runs the kubectl dump through Build: the fields
// crosswire reads must survive decoding.
func TestParseNodeListToState(t *testing.T) {
	nodes, err := ParseNodeList([]byte(kubectlDump))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nodes[0].CreationTimestamp.Time, t0.AddDate(0, 4, 0).Add(10*3600e9); !got.Equal(want) {
		t.Errorf("creationTimestamp %v, want %v", got, want)
	}
	st := Build(Input{Self: "node-b", DefaultPort: 51820, Nodes: nodes})
	want := State{
		SelfFound: true,
		Local:     pfx("10.244.2.0/24"),
		Peers: []proxy.Peer{{Name: "node-a", PublicKey: pubKey(1), Endpoint: ap("192.168.77.11:51820"),
			PodCIDRs: pfx("10.244.1.0/24", "fd00:10:244:1::/64")}},
	}
	if !stateEqual(st, want) {
		t.Errorf("state\n%s\nwant\n%s", fmtState(st), fmtState(want))
	}

	nodes, err = ParseNodeList([]byte(jsonList))
	if err != nil {
		t.Fatal(err)
	}
	st = Build(Input{Self: "a", Nodes: nodes})
	want = State{SelfFound: true, Local: pfx("10.244.1.0/24"), Peers: []proxy.Peer{{Name: "b", PodCIDRs: pfx("10.244.2.0/24")}}}
	if !stateEqual(st, want) {
		t.Errorf("state\n%s\nwant\n%s", fmtState(st), fmtState(want))
	}
}
