package controller

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func FuzzParsePodCIDR(f *testing.F) {
	for _, s := range []string{
		"10.244.1.0/24", " 10.0.0.0/8 ", "fd00:10:244::/48", "fd00::/32", "0.0.0.0/0", "::/0",
		"10.244.1.1/24", "::ffff:10.0.0.0/104", "169.0.0.0/8", "fe80::/64", "224.0.0.0/4",
		"255.255.255.255/32", "1.2.3.4/32", "fd00::1%eth0/128", "10.0.0.0/08", "", "/", "1.2.3.4/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePodCIDR(s)
		if err != nil {
			if p.IsValid() {
				t.Fatalf("error %v with a valid prefix %v", err, p)
			}
			return
		}
		checkPodCIDR(t, p)
		// The canonical text form parses back to the same prefix.
		if q, err := ParsePodCIDR(p.String()); err != nil || q != p {
			t.Fatalf("%q -> %v -> %v, %v", s, p, q, err)
		}
	})
}

// checkPodCIDR asserts everything ParsePodCIDR promises about a prefix.
func checkPodCIDR(t *testing.T, p netip.Prefix) {
	t.Helper()
	a := p.Addr()
	switch {
	case !p.IsValid():
		t.Fatalf("invalid prefix accepted")
	case p.Masked() != p:
		t.Fatalf("%v: host bits set", p)
	case a.Zone() != "":
		t.Fatalf("%v: zone", p)
	case a.Is4In6():
		t.Fatalf("%v: IPv4-mapped", p)
	case a.Is4() && p.Bits() < 8, a.Is6() && p.Bits() < 32:
		t.Fatalf("%v: too short", p)
	}
	for _, special := range []string{
		"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
		"::/128", "::1/128", "fe80::/10", "ff00::/8", "::ffff:0:0/96",
	} {
		if p.Overlaps(netip.MustParsePrefix(special)) {
			t.Fatalf("%v overlaps %s", p, special)
		}
	}
}

func FuzzParseNodeList(f *testing.F) {
	for _, s := range []string{
		kubectlDump, jsonList, yamlList, fileV1, fileV2, "", "{}", "null", "kind: List",
		`{"kind":"NodeList","items":[{"metadata":{"name":"a","annotations":{"crosswire.dev/pod-cidrs":"10.244.0.0/16,fd00::/32"}}},` +
			`{"metadata":{"name":"b","creationTimestamp":"2020-01-01T00:00:00Z","annotations":{"crosswire.dev/public-key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","crosswire.dev/endpoint":"10.244.3.1:1"}},"spec":{"podCIDRs":["10.244.3.0/24"]}},` +
			`{"metadata":{"name":"c","annotations":{"crosswire.dev/public-key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF="}},"spec":{"podCIDR":"10.244.1.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"::ffff:0.0.0.0"}]}}]}`,
		"kind: NodeList\nitems:\n- metadata: {name: a}\n  spec: {podCIDR: 10.1.0.0/16}\n- metadata: {name: b}\n  spec: {podCIDR: 10.1.2.0/24}\n",
		"kind: NodeList\nitems:\n- &n {metadata: {name: a}}\n- *n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes, err := ParseNodeList(data)
		if err != nil {
			if nodes != nil {
				t.Fatalf("nodes with error %v", err)
			}
			return
		}
		names := map[string]bool{}
		for _, n := range nodes {
			if n == nil {
				t.Fatal("nil node")
			}
			if names[n.Name] {
				t.Fatalf("duplicate name %q accepted", n.Name)
			}
			names[n.Name] = true
		}
		self := ""
		if len(nodes) > 0 {
			self = nodes[len(nodes)-1].Name
		}
		in := Input{Self: self, SelfKey: pubKey(0xee), DefaultPort: 51820, Nodes: nodes}
		st := Build(in)
		checkInvariants(t, in, st)
		for _, p := range st.Local {
			checkPodCIDR(t, p)
		}
		for _, peer := range st.Peers {
			for _, p := range peer.PodCIDRs {
				checkPodCIDR(t, p)
			}
			if !slices.IsSortedFunc(peer.PodCIDRs, netip.Prefix.Compare) {
				t.Fatalf("peer %s CIDRs not sorted: %v", peer.Name, peer.PodCIDRs)
			}
		}
		// Order of the input does not matter.
		rev := slices.Clone(nodes)
		slices.Reverse(rev)
		if again := Build(Input{Self: self, SelfKey: in.SelfKey, DefaultPort: 51820, Nodes: rev}); !stateEqual(st, again) {
			t.Fatalf("input order changed the state:\n%s\nvs\n%s", fmtState(st), fmtState(again))
		}
		// ParseNode agrees with Build on which nodes are valid on their own.
		for _, peer := range st.Peers {
			for _, n := range nodes {
				if n.Name == peer.Name {
					if _, err := ParseNode(n, 51820); err != nil {
						t.Fatalf("peer %s fails ParseNode: %v", peer.Name, err)
					}
				}
			}
		}
	})
}

// FuzzBuild drives Build with structured nodes, which reaches conflicts
// (overlaps, shared keys, endpoints in pod CIDRs) far more often than bytes
// through the YAML decoder do.
func FuzzBuild(f *testing.F) {
	f.Add("10.244.0.0/24", "10.244.0.0/16,fd00::/64", "10.244.1.0/24", "10.244.0.1:1", "", "192.168.1.1:51820", byte(0), byte(1), byte(1), byte(3))
	f.Add("fd00::/32", "fd00:1::/48", "10.0.0.0/8", "[fd00::1]:5", "10.1.1.1:1", "1.1.1.1:1", byte(9), byte(9), byte(0), byte(0x77))
	f.Fuzz(func(t *testing.T, c0, c1, c2, e0, e1, e2 string, a0, a1, a2, keys byte) {
		cidrs := []string{c0, c1, c2}
		eps := []string{e0, e1, e2}
		ages := []byte{a0, a1, a2}
		var nodes []*corev1.Node
		for i, name := range []string{"n0", "n1", "n2"} {
			opts := []nodeOpt{withCIDRAnn(cidrs[i]), withEndpoint(eps[i]), created(int(ages[i] % 4))}
			// Two bits per node pick no key, SelfKey or one of two shared keys.
			switch (keys >> (2 * i)) & 3 {
			case 1:
				opts = append(opts, withKey(testKey(0xee)))
			case 2:
				opts = append(opts, withKey(testKey(1)))
			case 3:
				opts = append(opts, withKey(testKey(2)))
			}
			nodes = append(nodes, mkNode(name, opts...))
		}
		self := []string{"n0", "n1", "n2", "absent"}[keys>>6]
		in := Input{Self: self, SelfKey: pubKey(0xee), DefaultPort: 51820, Nodes: nodes}
		st := Build(in)
		checkInvariants(t, in, st)
		for _, perm := range [][]int{{2, 1, 0}, {1, 2, 0}} {
			shuffled := []*corev1.Node{nodes[perm[0]], nodes[perm[1]], nodes[perm[2]]}
			if again := Build(Input{Self: self, SelfKey: in.SelfKey, DefaultPort: 51820, Nodes: shuffled}); !stateEqual(st, again) {
				t.Fatalf("input order changed the state:\n%s\nvs\n%s", fmtState(st), fmtState(again))
			}
		}
	})
}
