package controller

import (
	"bytes"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/wgtun"
)

// pubKey returns a valid key whose 32 bytes are all b.
func pubKey(b byte) wgtun.Key { return wgtun.Key(bytes.Repeat([]byte{b}, 32)) }

// testKey is pubKey(b) in canonical base64, as a Node annotation holds it.
func testKey(b byte) string { return pubKey(b).String() }

// t0 is the creation time of the oldest test node; age(n) is n seconds later.
var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type nodeOpt func(*corev1.Node)

func mkNode(name string, opts ...nodeOpt) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, o := range opts {
		o(n)
	}
	return n
}

func ann(k, v string) nodeOpt {
	return func(n *corev1.Node) {
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[k] = v
	}
}

func withKey(k string) nodeOpt         { return ann(AnnotationPublicKey, k) }
func withEndpoint(e string) nodeOpt    { return ann(AnnotationEndpoint, e) }
func withOverride(e string) nodeOpt    { return ann(AnnotationEndpointOverride, e) }
func withCIDRAnn(s string) nodeOpt     { return ann(AnnotationPodCIDRs, s) }
func withPodCIDR(s string) nodeOpt     { return func(n *corev1.Node) { n.Spec.PodCIDR = s } }
func withPodCIDRs(s ...string) nodeOpt { return func(n *corev1.Node) { n.Spec.PodCIDRs = s } }

func withAddr(typ corev1.NodeAddressType, a string) nodeOpt {
	return func(n *corev1.Node) {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: typ, Address: a})
	}
}

func withIP(a string) nodeOpt { return withAddr(corev1.NodeInternalIP, a) }

func created(sec int) nodeOpt {
	return func(n *corev1.Node) { n.CreationTimestamp = metav1.NewTime(t0.Add(time.Duration(sec) * time.Second)) }
}

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func ap(s string) netip.AddrPort {
	if s == "" {
		return netip.AddrPort{}
	}
	return netip.MustParseAddrPort(s)
}

// normState turns empty slices into nil so that expectations need not care.
func normState(st State) State {
	if len(st.Local) == 0 {
		st.Local = nil
	}
	if len(st.Peers) == 0 {
		st.Peers = nil
	}
	if len(st.Rejected) == 0 {
		st.Rejected = nil
	}
	if len(st.Fenced) == 0 {
		st.Fenced = nil
	}
	for i := range st.Peers {
		if len(st.Peers[i].PodCIDRs) == 0 {
			st.Peers[i].PodCIDRs = nil
		}
	}
	return st
}

func fmtState(st State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SelfFound=%v Local=%v\n", st.SelfFound, st.Local)
	for _, p := range st.Peers {
		fmt.Fprintf(&b, "  peer %s key=%q ep=%v cidrs=%v\n", p.Name, p.PublicKey, p.Endpoint, p.PodCIDRs)
	}
	for _, r := range st.Rejected {
		fmt.Fprintf(&b, "  rejected %s: %s\n", r.Node, r.Reason)
	}
	for _, p := range st.Fenced {
		fmt.Fprintf(&b, "  fenced %s cidrs=%v\n", p.Name, p.PodCIDRs)
	}
	return b.String()
}

func stateEqual(a, b State) bool {
	return reflect.DeepEqual(normState(a), normState(b))
}
