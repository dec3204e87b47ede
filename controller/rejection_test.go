package controller

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestRejectionGroups: every kind of bad Node is rejected with the group
// its check sets, the label value crosswire_rejected_nodes has always used
// for it.
func TestRejectionGroups(t *testing.T) {
	big := strings.Repeat("x", maxAnnotationBytes+1)
	many := strings.TrimSuffix(strings.Repeat("10.250.0.0/24,", maxPodCIDRsPerNode+1), ",")
	nodes := []*corev1.Node{
		mkNode("self", created(0), withPodCIDRs("10.244.0.0/24"), withIP("192.168.0.1")),
		mkNode("holder", created(1), withPodCIDRs("10.244.1.0/24"), withKey(testKey(1)), withIP("192.168.0.2")),
		mkNode("bad-key", created(2), withPodCIDRs("10.244.2.0/24"), withKey("not-a-key"), withIP("192.168.0.3")),
		mkNode("big-key", created(3), withPodCIDRs("10.244.3.0/24"), withKey(big)),
		mkNode("bad-cidr", created(4), withPodCIDRs("10.244.4.0/33")),
		mkNode("many-cidrs", created(5), withCIDRAnn(many)),
		mkNode("big-cidrs", created(6), withCIDRAnn(big)),
		mkNode("overlap", created(7), withPodCIDRs("10.244.1.0/25"), withKey(testKey(7))),
		mkNode("dup-key", created(8), withPodCIDRs("10.244.8.0/24"), withKey(testKey(1)), withIP("192.168.0.8")),
		mkNode("own-key", created(9), withPodCIDRs("10.244.9.0/24"), withKey(testKey(99)), withIP("192.168.0.9")),
		mkNode("bad-endpoint", created(10), withPodCIDRs("10.244.10.0/24"), withKey(testKey(10)), withEndpoint("192.168.0.10:0")),
		mkNode("big-override", created(11), withPodCIDRs("10.244.11.0/24"), withKey(testKey(11)), withOverride(big)),
		mkNode("bad-ip", created(12), withPodCIDRs("10.244.12.0/24"), withKey(testKey(12)), withIP("x")),
		mkNode("loop", created(13), withPodCIDRs("10.244.13.0/24"), withKey(testKey(13)), withEndpoint("10.244.1.7:51820")),
		mkNode("big-other", created(14), withPodCIDRs("10.244.14.0/24"), ann("crosswire.dev/future", big)),
		mkNode("twin", created(15), withPodCIDRs("10.244.15.0/24")),
		mkNode("twin", created(15), withPodCIDRs("10.244.16.0/24")),
	}
	st := Build(Input{Self: "self", SelfKey: pubKey(99), DefaultPort: 51820, Nodes: nodes})
	want := map[string]ReasonGroup{
		"bad-key": GroupKey, "big-key": GroupKey,
		"bad-cidr": GroupCIDR, "many-cidrs": GroupCIDR, "big-cidrs": GroupCIDR,
		"overlap": GroupOverlap,
		"dup-key": GroupDuplicateKey, "own-key": GroupDuplicateKey,
		"bad-endpoint": GroupEndpoint, "big-override": GroupEndpoint, "bad-ip": GroupEndpoint, "loop": GroupEndpoint,
		"big-other": GroupOther, "twin": GroupOther,
	}
	got := map[string]ReasonGroup{}
	for _, r := range st.Rejected {
		got[r.Node] = r.Group
	}
	for node, g := range want {
		if got[node] != g {
			t.Errorf("%s: group %q, want %q (rejections: %+v)", node, got[node], g, st.Rejected)
		}
	}
	if len(got) != len(want) {
		t.Errorf("rejected %v, want exactly %v", got, want)
	}
}

func TestReasonGroupsAreTheMetricLabels(t *testing.T) {
	var labels []string
	for _, g := range ReasonGroups() {
		labels = append(labels, string(g))
	}
	if got := strings.Join(labels, ","); got != "key,cidr,overlap,duplicate_key,endpoint,other" {
		t.Errorf("ReasonGroups() = %s", got)
	}
}
