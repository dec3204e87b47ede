package controller

import (
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

func TestBuild(t *testing.T) {
	kSelf, k1, k2, k3 := testKey(0xee), testKey(1), testKey(2), testKey(3)
	self := func(opts ...nodeOpt) *corev1.Node {
		return mkNode("self", append([]nodeOpt{created(100), withKey(kSelf), withIP("192.168.77.10"), withPodCIDRs("10.244.0.0/24", "fd00:10:244::/64")}, opts...)...)
	}
	tests := []struct {
		name  string
		in    Input
		want  State
		check func(t *testing.T, st State) // extra checks, optional
	}{
		{
			name: "self is local, others are peers sorted by name",
			in: Input{Self: "self", SelfKey: pubKey(0xee), DefaultPort: 51820, Nodes: []*corev1.Node{
				mkNode("zeta", created(1), withKey(k1), withIP("192.168.77.11"), withPodCIDR("10.244.1.0/24")),
				self(),
				mkNode("alpha", created(2), withKey(k2), withEndpoint("[fd00::2]:4000"), withPodCIDRs("10.244.2.0/24", "fd00:10:244:2::/64")),
			}},
			want: State{
				SelfFound: true,
				Local:     pfx("10.244.0.0/24", "fd00:10:244::/64"),
				Peers: []proxy.Peer{
					{Name: "alpha", PublicKey: pubKey(2), Endpoint: ap("[fd00::2]:4000"), PodCIDRs: pfx("10.244.2.0/24", "fd00:10:244:2::/64")},
					{Name: "zeta", PublicKey: pubKey(1), Endpoint: ap("192.168.77.11:51820"), PodCIDRs: pfx("10.244.1.0/24")},
				},
			},
		},
		{
			name: "self missing",
			in: Input{Self: "self", SelfKey: pubKey(0xee), DefaultPort: 51820, Nodes: []*corev1.Node{
				mkNode("a", withKey(k1), withIP("192.168.77.11"), withPodCIDR("10.244.1.0/24")),
			}},
			want: State{Peers: []proxy.Peer{{Name: "a", PublicKey: pubKey(1), Endpoint: ap("192.168.77.11:51820"), PodCIDRs: pfx("10.244.1.0/24")}}},
		},
		{
			name: "empty input",
			in:   Input{Self: "self"},
			want: State{},
		},
		{
			name: "peer without key or endpoint is still a peer (strict mode needs its CIDRs)",
			in: Input{Self: "self", Nodes: []*corev1.Node{
				self(), mkNode("a", withPodCIDR("10.244.1.0/24")),
			}},
			want: State{SelfFound: true, Local: pfx("10.244.0.0/24", "fd00:10:244::/64"),
				Peers: []proxy.Peer{{Name: "a", PodCIDRs: pfx("10.244.1.0/24")}}},
		},
		{
			name: "older node overlapping self is rejected: self claims first",
			in: Input{Self: "self", DefaultPort: 51820, Nodes: []*corev1.Node{
				self(),
				mkNode("old", created(0), withKey(k1), withIP("192.168.77.11"), withPodCIDR("10.244.0.128/25")),
			}},
			want: State{SelfFound: true, Local: pfx("10.244.0.0/24", "fd00:10:244::/64"),
				Rejected: []Rejection{{"old", "pod CIDR 10.244.0.128/25 overlaps 10.244.0.0/24, already claimed by an older node", GroupOverlap}}},
		},
		{
			name: "overlap between peers: younger loses; IPv6 overlap too",
			in: Input{Self: "self", DefaultPort: 51820, Nodes: []*corev1.Node{
				mkNode("young", created(50), withKey(k1), withIP("192.168.77.11"), withPodCIDR("10.244.1.0/24")),
				mkNode("old", created(10), withKey(k2), withIP("192.168.77.12"), withPodCIDR("10.244.0.0/16")),
				mkNode("young6", created(60), withKey(k3), withIP("192.168.77.13"), withCIDRAnn("fd00:10:244::/48")),
				self(withPodCIDRs("10.245.0.0/24", "fd00:10:244:1::/64")),
			}},
			want: State{SelfFound: true, Local: pfx("10.245.0.0/24", "fd00:10:244:1::/64"),
				Peers: []proxy.Peer{{Name: "old", PublicKey: pubKey(2), Endpoint: ap("192.168.77.12:51820"), PodCIDRs: pfx("10.244.0.0/16")}},
				Rejected: []Rejection{
					{"young", "pod CIDR 10.244.1.0/24 overlaps 10.244.0.0/16, already claimed by an older node", GroupOverlap},
					{"young6", "pod CIDR fd00:10:244::/48 overlaps fd00:10:244:1::/64, already claimed by an older node", GroupOverlap},
				}},
		},
		{
			name: "overlap with equal creation time: name decides",
			in: Input{Self: "self", DefaultPort: 51820, Nodes: []*corev1.Node{
				mkNode("b", created(5), withKey(k1), withIP("192.168.77.11"), withPodCIDR("10.244.1.0/24")),
				mkNode("a", created(5), withKey(k2), withIP("192.168.77.12"), withPodCIDR("10.244.1.0/24")),
			}},
			want: State{
				Peers:    []proxy.Peer{{Name: "a", PublicKey: pubKey(2), Endpoint: ap("192.168.77.12:51820"), PodCIDRs: pfx("10.244.1.0/24")}},
				Rejected: []Rejection{{"b", "pod CIDR 10.244.1.0/24 overlaps 10.244.1.0/24, already claimed by an older node", GroupOverlap}},
			},
		},
		{
			name: "IPv4 and IPv6 never overlap",
			in: Input{Self: "self", Nodes: []*corev1.Node{
				mkNode("a", withPodCIDR("10.0.0.0/8")), mkNode("b", withCIDRAnn("fd00::/32")),
			}},
			want: State{Peers: []proxy.Peer{{Name: "a", PodCIDRs: pfx("10.0.0.0/8")}, {Name: "b", PodCIDRs: pfx("fd00::/32")}}},
		},
		{
			name: "duplicate key: younger rejected, even with another spelling",
			in: Input{Self: "self", DefaultPort: 51820, Nodes: []*corev1.Node{
				mkNode("copy", created(9), withKey(" "+k1[:len(k1)-2]+"F="), withIP("192.168.77.12"), withPodCIDR("10.244.2.0/24")),
				mkNode("orig", created(3), withKey(k1), withIP("192.168.77.11"), withPodCIDR("10.244.1.0/24")),
			}},
			want: State{
				Peers:    []proxy.Peer{{Name: "orig", PublicKey: pubKey(1), Endpoint: ap("192.168.77.11:51820"), PodCIDRs: pfx("10.244.1.0/24")}},
				Rejected: []Rejection{{"copy", "public key already used by node orig", GroupDuplicateKey}},
			},
		},
		{
			name: "node using this agent's own key is rejected, even when older and spelled differently",
			in: Input{Self: "self", SelfKey: pubKey(0xee), DefaultPort: 51820, Nodes: []*corev1.Node{
				mkNode("thief", created(0), withKey(kSelf[:len(kSelf)-2]+"5="), withIP("192.168.77.11"), withPodCIDR("10.244.1.0/24")),
				self(),
			}},
			want: State{SelfFound: true, Local: pfx("10.244.0.0/24", "fd00:10:244::/64"),
				Rejected: []Rejection{{"thief", "public key is this node's own key", GroupDuplicateKey}}},
			check: func(t *testing.T, st State) {
				if kSelf[len(kSelf)-2:] != "4=" {
					t.Fatalf("test assumption broken: %q", kSelf)
				}
			},
		},
		{
			name: "node using SelfKey rejected while self is absent",
			in: Input{Self: "self", SelfKey: pubKey(0xee), Nodes: []*corev1.Node{
				mkNode("thief", withKey(kSelf), withPodCIDR("10.244.1.0/24")),
			}},
			want: State{Rejected: []Rejection{{"thief", "public key is this node's own key", GroupDuplicateKey}}},
		},
		{
			name: "self publishing SelfKey is fine",
			in:   Input{Self: "self", SelfKey: pubKey(0xee), Nodes: []*corev1.Node{self()}},
			want: State{SelfFound: true, Local: pfx("10.244.0.0/24", "fd00:10:244::/64")},
		},
		{
			name: "endpoint inside pod CIDRs: own, another node's, and this node's",
			in: Input{Self: "self", DefaultPort: 51820, Nodes: []*corev1.Node{
				self(),
				mkNode("own", withKey(k1), withEndpoint("10.244.1.1:51820"), withPodCIDR("10.244.1.0/24")),
				mkNode("other", withKey(k2), withIP("10.244.4.7"), withPodCIDR("10.244.2.0/24")),
				mkNode("local", withKey(k3), withEndpoint("[fd00:10:244::5]:51820"), withPodCIDR("10.244.3.0/24")),
				mkNode("good", withKey(testKey(4)), withIP("192.168.77.14"), withPodCIDR("10.244.4.0/24")),
			}},
			want: State{SelfFound: true, Local: pfx("10.244.0.0/24", "fd00:10:244::/64"),
				Peers: []proxy.Peer{{Name: "good", PublicKey: pubKey(4), Endpoint: ap("192.168.77.14:51820"), PodCIDRs: pfx("10.244.4.0/24")}},
				Rejected: []Rejection{
					{"local", "endpoint [fd00:10:244::5]:51820 lies inside pod CIDR fd00:10:244::/64", GroupEndpoint},
					{"other", "endpoint 10.244.4.7:51820 lies inside pod CIDR 10.244.4.0/24", GroupEndpoint},
					{"own", "endpoint 10.244.1.1:51820 lies inside pod CIDR 10.244.1.0/24", GroupEndpoint},
				}},
		},
		{
			name: "misconfigured older node keeps its CIDR and key claims",
			in: Input{Self: "self", DefaultPort: 51820, Nodes: []*corev1.Node{
				mkNode("old-bad-ep", created(1), withKey(k1), withOverride("nonsense"), withPodCIDR("10.244.1.0/24")),
				mkNode("old-bad-key", created(2), withKey("garbage"), withIP("192.168.77.12"), withPodCIDR("10.244.2.0/24")),
				mkNode("new1", created(10), withKey(k3), withIP("192.168.77.13"), withPodCIDR("10.244.1.0/24")),
				mkNode("new2", created(11), withKey(testKey(4)), withIP("192.168.77.14"), withPodCIDR("10.244.2.0/25")),
				mkNode("new3", created(12), withKey(k1), withIP("192.168.77.15"), withPodCIDR("10.244.5.0/24")),
			}},
			want: State{
				Peers: nil,
				Rejected: []Rejection{
					{"new1", "pod CIDR 10.244.1.0/24 overlaps 10.244.1.0/24, already claimed by an older node", GroupOverlap},
					{"new2", "pod CIDR 10.244.2.0/25 overlaps 10.244.2.0/24, already claimed by an older node", GroupOverlap},
					{"new3", "public key already used by node old-bad-ep", GroupDuplicateKey},
					{"old-bad-ep", "annotation crosswire.dev/endpoint-override: not an ip:port", GroupEndpoint},
					{"old-bad-key", "annotation crosswire.dev/public-key: not base64: illegal base64 data at input byte 4", GroupKey},
				}},
		},
		{
			name: "older node with invalid CIDRs claims nothing",
			in: Input{Self: "self", DefaultPort: 51820, Nodes: []*corev1.Node{
				mkNode("old", created(1), withKey(k1), withIP("192.168.77.11"), withCIDRAnn("10.244.1.0/24,bogus")),
				mkNode("new", created(2), withKey(k1), withIP("192.168.77.12"), withPodCIDR("10.244.1.0/24")),
			}},
			want: State{
				Peers:    []proxy.Peer{{Name: "new", PublicKey: pubKey(1), Endpoint: ap("192.168.77.12:51820"), PodCIDRs: pfx("10.244.1.0/24")}},
				Rejected: []Rejection{{"old", `annotation crosswire.dev/pod-cidrs: CIDR "bogus": netip.ParsePrefix("bogus"): no '/'`, GroupCIDR}},
			},
		},
		{
			name: "own bad endpoint or key never costs this node its local CIDRs",
			in: Input{Self: "self", SelfKey: pubKey(0xee), DefaultPort: 51820, Nodes: []*corev1.Node{
				self(withOverride("127.0.0.1:1"), withKey("junk")),
			}},
			want: State{SelfFound: true, Local: pfx("10.244.0.0/24", "fd00:10:244::/64")},
		},
		{
			name: "own bad pod CIDRs: self rejected, not found",
			in: Input{Self: "self", DefaultPort: 51820, Nodes: []*corev1.Node{
				self(withCIDRAnn("0.0.0.0/0")),
				mkNode("a", withKey(k1), withIP("192.168.77.11"), withPodCIDR("10.244.1.0/24")),
			}},
			want: State{
				Peers:    []proxy.Peer{{Name: "a", PublicKey: pubKey(1), Endpoint: ap("192.168.77.11:51820"), PodCIDRs: pfx("10.244.1.0/24")}},
				Rejected: []Rejection{{"self", `annotation crosswire.dev/pod-cidrs: CIDR "0.0.0.0/0": prefix shorter than /8`, GroupCIDR}},
			},
		},
		{
			name: "duplicate names in the input: every copy rejected; nil nodes skipped",
			in: Input{Self: "self", DefaultPort: 51820, Nodes: []*corev1.Node{
				nil,
				mkNode("twin", withKey(k1), withIP("192.168.77.11"), withPodCIDR("10.244.1.0/24")),
				mkNode("twin", withKey(k2), withIP("192.168.77.12"), withPodCIDR("10.244.2.0/24")),
				self(), self(),
				mkNode("a", withKey(k3), withIP("192.168.77.13"), withPodCIDR("10.244.3.0/24")),
			}},
			want: State{
				Peers: []proxy.Peer{{Name: "a", PublicKey: pubKey(3), Endpoint: ap("192.168.77.13:51820"), PodCIDRs: pfx("10.244.3.0/24")}},
				Rejected: []Rejection{
					{"self", "node name appears 2 times", GroupOther}, {"self", "node name appears 2 times", GroupOther},
					{"twin", "node name appears 2 times", GroupOther}, {"twin", "node name appears 2 times", GroupOther},
				},
			},
		},
		{
			name: "nameless node rejected even when Self is empty",
			in:   Input{Nodes: []*corev1.Node{mkNode("", withPodCIDR("10.244.1.0/24"))}},
			want: State{Rejected: []Rejection{{"", "node has no name", GroupOther}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := slices.Clone(tt.in.Nodes)
			got := Build(tt.in)
			if !stateEqual(got, tt.want) {
				t.Errorf("Build =\n%s\nwant\n%s", fmtState(got), fmtState(tt.want))
			}
			if !slices.Equal(orig, tt.in.Nodes) {
				t.Errorf("Build reordered its input")
			}
			if tt.check != nil {
				tt.check(t, got)
			}
			checkInvariants(t, tt.in, got)
		})
	}
}

// TestBuildBadNodesKeepGoodPeers mixes every kind of bad node with good ones
// and checks that each good peer comes out with exact fields, and that the
// result does not depend on the order of the input.
func TestBuildBadNodesKeepGoodPeers(t *testing.T) {
	kSelf := testKey(0xee)
	big := strings.Repeat("x", maxAnnotationBytes+1)
	nodes := []*corev1.Node{
		mkNode("self", created(50), withKey(kSelf), withIP("192.168.77.10"), withPodCIDRs("10.244.0.0/24", "fd00:10:244::/64")),
		mkNode("good-1", created(1), withKey(testKey(1)), withIP("192.168.77.11"), withPodCIDRs("10.244.1.0/24", "fd00:10:244:1::/64")),
		mkNode("good-2", created(2), withKey(testKey(2)), withEndpoint("[fd00::12]:51000"), withPodCIDR("10.244.2.0/24")),
		mkNode("good-3", created(3), withOverride("203.0.113.3:443"), withEndpoint("192.168.77.13:51820"), withCIDRAnn("10.244.3.0/24, 10.244.33.0/24")),
		mkNode("good-4", created(4)),
		mkNode("bad-key", created(5), withKey("AAAA"), withIP("192.168.77.20"), withPodCIDR("10.244.20.0/24")),
		mkNode("bad-zero-key", created(5), withKey(testKey(0)), withIP("192.168.77.21"), withPodCIDR("10.244.21.0/24")),
		mkNode("bad-ep", created(5), withKey(testKey(22)), withEndpoint("192.168.77.22"), withPodCIDR("10.244.22.0/24")),
		mkNode("bad-ep-loop", created(5), withKey(testKey(23)), withEndpoint("127.0.0.1:51820"), withPodCIDR("10.244.23.0/24")),
		mkNode("bad-cidr", created(5), withKey(testKey(24)), withIP("192.168.77.24"), withPodCIDR("10.244.24.1/24")),
		mkNode("bad-cidr-wide", created(5), withKey(testKey(25)), withIP("192.168.77.25"), withCIDRAnn("10.0.0.0/4")),
		mkNode("bad-cidr-many", created(5), withKey(testKey(26)), withIP("192.168.77.26"), withCIDRAnn(cidrList(17))),
		mkNode("bad-overlap-self", created(0), withKey(testKey(27)), withIP("192.168.77.27"), withPodCIDR("10.244.0.0/16")),
		mkNode("bad-overlap-peer", created(9), withKey(testKey(28)), withIP("192.168.77.28"), withCIDRAnn("fd00:10:244:1::/64")),
		mkNode("bad-dup-key", created(9), withKey(testKey(1)), withIP("192.168.77.29"), withPodCIDR("10.244.29.0/24")),
		mkNode("bad-self-key", created(9), withKey(kSelf), withIP("192.168.77.30"), withPodCIDR("10.244.30.0/24")),
		mkNode("bad-ep-in-pods", created(9), withKey(testKey(31)), withIP("10.244.2.200"), withPodCIDR("10.244.31.0/24")),
		mkNode("bad-big", created(9), withKey(testKey(32)), withIP("192.168.77.32"), withPodCIDR("10.244.32.0/24"), ann("crosswire.dev/x", big)),
		mkNode("", created(9)),
		mkNode("bad-ip", created(9), withIP("nope"), withPodCIDR("10.244.34.0/24")),
	}
	want := []proxy.Peer{
		{Name: "good-1", PublicKey: pubKey(1), Endpoint: ap("192.168.77.11:51820"), PodCIDRs: pfx("10.244.1.0/24", "fd00:10:244:1::/64")},
		{Name: "good-2", PublicKey: pubKey(2), Endpoint: ap("[fd00::12]:51000"), PodCIDRs: pfx("10.244.2.0/24")},
		{Name: "good-3", Endpoint: ap("203.0.113.3:443"), PodCIDRs: pfx("10.244.3.0/24", "10.244.33.0/24")},
		{Name: "good-4", PodCIDRs: nil},
	}
	in := Input{Self: "self", SelfKey: pubKey(0xee), DefaultPort: 51820, Nodes: nodes}
	first := Build(in)
	got := normState(first)
	if !got.SelfFound || !slices.Equal(got.Local, pfx("10.244.0.0/24", "fd00:10:244::/64")) {
		t.Errorf("self: found=%v local=%v", got.SelfFound, got.Local)
	}
	if !stateEqual(State{Peers: got.Peers}, State{Peers: want}) {
		t.Errorf("peers:\n%s\nwant\n%s", fmtState(State{Peers: got.Peers}), fmtState(State{Peers: want}))
	}
	var rejected []string
	for _, r := range got.Rejected {
		rejected = append(rejected, r.Node)
		if r.Reason == "" {
			t.Errorf("node %q rejected without a reason", r.Node)
		}
	}
	var wantRejected []string
	for _, n := range nodes {
		if n.Name == "" || strings.HasPrefix(n.Name, "bad-") {
			wantRejected = append(wantRejected, n.Name)
		}
	}
	slices.Sort(wantRejected)
	if !slices.Equal(rejected, wantRejected) {
		t.Errorf("rejected %q\nwant     %q", rejected, wantRejected)
	}
	checkInvariants(t, in, first)

	// Deterministic regardless of input order.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20; i++ {
		shuffled := slices.Clone(nodes)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		again := Build(Input{Self: "self", SelfKey: pubKey(0xee), DefaultPort: 51820, Nodes: shuffled})
		if !stateEqual(first, again) {
			t.Fatalf("shuffle %d changed the result:\n%s\nvs\n%s", i, fmtState(again), fmtState(first))
		}
	}
}

// checkInvariants asserts what must hold for any Build output.
func checkInvariants(t *testing.T, in Input, st State) {
	t.Helper()
	names := map[string]int{}
	for _, n := range in.Nodes {
		if n != nil {
			names[n.Name]++
		}
	}
	// Every input node is accounted for exactly once.
	seen := map[string]int{}
	if st.SelfFound {
		seen[in.Self]++
	} else if len(st.Local) != 0 {
		t.Errorf("Local %v without SelfFound", st.Local)
	}
	for _, p := range st.Peers {
		seen[p.Name]++
		if p.Name == in.Self {
			t.Errorf("self %q is a peer", p.Name)
		}
	}
	for _, r := range st.Rejected {
		seen[r.Node]++
		if r.Reason == "" {
			t.Errorf("rejection of %q has no reason", r.Node)
		}
	}
	for name, c := range names {
		if seen[name] != c {
			t.Errorf("node %q: %d in input, accounted for %d times", name, c, seen[name])
		}
	}
	if len(seen) != len(names) {
		t.Errorf("output names %v, input names %v", seen, names)
	}
	if !slices.IsSortedFunc(st.Peers, func(a, b proxy.Peer) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("peers not sorted by name")
	}
	if !slices.IsSortedFunc(st.Rejected, func(a, b Rejection) int { return strings.Compare(a.Node, b.Node) }) {
		t.Errorf("rejections not sorted by name")
	}
	// CIDRs valid and disjoint across self and peers; keys unique,
	// not SelfKey; endpoints outside every CIDR.
	type owned struct {
		p     netip.Prefix
		owner string
	}
	var all []owned
	for _, p := range st.Local {
		all = append(all, owned{p, in.Self})
	}
	keys := map[wgtun.Key]string{}
	if !in.SelfKey.IsZero() {
		keys[in.SelfKey] = in.Self
	}
	for _, peer := range st.Peers {
		if len(peer.PodCIDRs) > maxPodCIDRsPerNode {
			t.Errorf("peer %s has %d CIDRs", peer.Name, len(peer.PodCIDRs))
		}
		for _, p := range peer.PodCIDRs {
			all = append(all, owned{p, peer.Name})
		}
		if !peer.PublicKey.IsZero() {
			if o, dup := keys[peer.PublicKey]; dup {
				t.Errorf("peer %s: key also held by %q", peer.Name, o)
			}
			keys[peer.PublicKey] = peer.Name
		}
		if peer.Endpoint.IsValid() {
			if _, err := checkEndpoint(peer.Endpoint); err != nil {
				t.Errorf("peer %s: %v", peer.Name, err)
			}
		}
	}
	for i, a := range all {
		if q, err := ParsePodCIDR(a.p.String()); err != nil || q != a.p {
			t.Errorf("%s: CIDR %v does not re-parse: %v", a.owner, a.p, err)
		}
		for _, b := range all[i+1:] {
			if a.owner != b.owner && a.p.Overlaps(b.p) {
				t.Errorf("%s's %v overlaps %s's %v", a.owner, a.p, b.owner, b.p)
			}
		}
		for _, peer := range st.Peers {
			if peer.Endpoint.IsValid() && a.p.Contains(peer.Endpoint.Addr()) {
				t.Errorf("peer %s endpoint %v inside %s's %v", peer.Name, peer.Endpoint, a.owner, a.p)
			}
		}
	}
}

// TestBuildSeniorWinsCreationTie: creation timestamps have one-second
// resolution; a Node created in the same second as an established peer and
// claiming its CIDR and key loses, whatever its name.
func TestBuildSeniorWinsCreationTie(t *testing.T) {
	same := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(n *corev1.Node) { n.CreationTimestamp = metav1.NewTime(same) }
	real := mkNode("node2", at, withPodCIDRs("10.244.2.0/24"), withKey(testKey(2)), withIP("192.168.77.12"))
	evil := mkNode("a-evil", at, withPodCIDRs("10.244.2.0/24"), withKey(testKey(2)), withIP("192.168.77.66"))
	self := mkNode(selfName, withPodCIDRs("10.244.1.0/24"), withIP("192.168.77.11"))

	first := Build(Input{Self: selfName, DefaultPort: 51820, Nodes: []*corev1.Node{self, real}})
	if len(first.Peers) != 1 || first.Peers[0].Name != "node2" {
		t.Fatalf("first state %+v", first)
	}
	seen := newSeniority()
	seen.sync([]*corev1.Node{self, real})
	seen.add(evil.Name)
	st := Build(Input{Self: selfName, DefaultPort: 51820, Nodes: []*corev1.Node{self, real, evil}, Seen: seen.seen})
	if len(st.Peers) != 1 || st.Peers[0].Name != "node2" || len(st.Rejected) != 1 || st.Rejected[0].Node != "a-evil" {
		t.Fatalf("newcomer with the same timestamp took over: %+v", st)
	}
	// Seen together, name decides (deterministic, documented).
	st = Build(Input{Self: selfName, DefaultPort: 51820, Nodes: []*corev1.Node{self, real, evil}})
	if st.Peers[0].Name != "a-evil" {
		t.Fatalf("tie without incumbents: %+v", st.Peers)
	}
}

func TestStateEqual(t *testing.T) {
	base := State{SelfFound: true, Local: pfx("10.0.0.0/24"),
		Peers:    []proxy.Peer{{Name: "a", PublicKey: pubKey(1), PodCIDRs: pfx("10.1.0.0/24")}},
		Rejected: []Rejection{{"b", "why", GroupOther}}}
	clone := func() State {
		c := base
		c.Local = append([]netip.Prefix(nil), base.Local...)
		c.Peers = []proxy.Peer{base.Peers[0]}
		c.Peers[0].PodCIDRs = pfx("10.1.0.0/24")
		c.Rejected = append([]Rejection(nil), base.Rejected...)
		return c
	}
	if !base.Equal(clone()) {
		t.Fatal("a copy is not Equal")
	}
	for name, mutate := range map[string]func(*State){
		"self":     func(s *State) { s.SelfFound = false },
		"local":    func(s *State) { s.Local = pfx("10.0.1.0/24") },
		"key":      func(s *State) { s.Peers[0].PublicKey = pubKey(2) },
		"endpoint": func(s *State) { s.Peers[0].Endpoint = netip.MustParseAddrPort("192.0.2.1:1") },
		"cidrs":    func(s *State) { s.Peers[0].PodCIDRs = pfx("10.1.0.0/24", "10.2.0.0/24") },
		"peers":    func(s *State) { s.Peers = nil },
		"rejected": func(s *State) { s.Rejected[0].Reason = "other" },
	} {
		c := clone()
		mutate(&c)
		if base.Equal(c) || c.Equal(base) {
			t.Errorf("%s: a changed state is Equal", name)
		}
	}
}

// TestBuildFencesRejectedNodes: with Fence (strict mode), a rejected Node's
// pod CIDRs that nobody else holds come back as a keyless peer, so the
// engine drops their traffic instead of leaving it on the plain route;
// without Fence nothing changes.
func TestBuildFencesRejectedNodes(t *testing.T) {
	nodes := []*corev1.Node{
		mkNode(selfName, created(0), withPodCIDRs("10.244.0.0/24"), withIP("192.168.77.1")),
		mkNode("good", created(1), withPodCIDRs("10.244.1.0/24"), withKey(testKey(1)), withIP("192.168.77.2")),
		mkNode("bad-key", created(2), withPodCIDRs("10.244.2.0/24"), withKey("not a key"), withIP("192.168.77.3")),
		mkNode("dup-key", created(2), withPodCIDRs("10.244.3.0/24"), withKey(testKey(1)), withIP("192.168.77.4")),
		mkNode("loop", created(2), withPodCIDRs("10.244.4.0/24"), withKey(testKey(4)), withIP("10.244.1.9")),
		// Half stolen: 10.244.1.0/25 is good's, 10.244.5.0/24 nobody's.
		mkNode("thief", created(3), withPodCIDRs("10.244.1.0/25", "10.244.5.0/24"), withKey(testKey(5)), withIP("192.168.77.6")),
		// Younger, wants the same spare CIDR: the older rejected Node keeps it.
		mkNode("thief2", created(4), withPodCIDRs("10.244.1.128/25", "10.244.5.0/24"), withKey(testKey(6)), withIP("192.168.77.7")),
		mkNode("bad-cidr", created(2), withPodCIDRs("10.244.6.0/33"), withKey(testKey(7)), withIP("192.168.77.8")),
	}
	plain := Build(Input{Self: selfName, DefaultPort: 51820, Nodes: nodes})
	fenced := Build(Input{Self: selfName, DefaultPort: 51820, Nodes: nodes, Fence: true})
	if len(plain.Fenced) != 0 {
		t.Fatalf("fenced without Fence: %v", plain.Fenced)
	}
	plainCopy := fenced
	plainCopy.Fenced = nil
	if !stateEqual(plainCopy, plain) {
		t.Fatalf("Fence changed more than Fenced:\n%s\nwant\n%s", fmtState(plainCopy), fmtState(plain))
	}
	want := []proxy.Peer{
		{Name: "bad-key", PodCIDRs: pfx("10.244.2.0/24")},
		{Name: "dup-key", PodCIDRs: pfx("10.244.3.0/24")},
		{Name: "loop", PodCIDRs: pfx("10.244.4.0/24")},
		{Name: "thief", PodCIDRs: pfx("10.244.5.0/24")},
	}
	if !reflect.DeepEqual(fenced.Fenced, want) {
		t.Fatalf("fenced %+v, want %+v", fenced.Fenced, want)
	}
	d := fenced.Desired()
	var names []string
	for _, p := range d.Peers {
		names = append(names, p.Name)
		if p.Name != "good" && (!p.PublicKey.IsZero() || p.Endpoint.IsValid()) {
			t.Errorf("fenced %s reaches the engine with a key or endpoint: %+v", p.Name, p)
		}
	}
	if got := strings.Join(names, ","); got != "bad-key,dup-key,good,loop,thief" {
		t.Fatalf("engine peers %s", got)
	}
}
