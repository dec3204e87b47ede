package nft

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

// kernelView is what `nft -j list table` shows, reduced to what the tests
// assert on. It is parsed independently of the package's own read-back, so
// the package is not checked against itself.
type kernelView struct {
	sets   map[string][]string // set name -> elements as nft prints them (sorted)
	chains map[string]nftChain
	rules  map[string][]string // chain -> rule comments in order
}

type nftChain struct {
	Type   string `json:"type"`
	Hook   string `json:"hook"`
	Prio   int    `json:"prio"`
	Policy string `json:"policy"`
}

func listTable(t *testing.T, ns *testNS, table string) kernelView {
	t.Helper()
	out := ns.nft(t, "-j", "list", "table", "inet", table)
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("parse nft json: %v\n%s", err, out)
	}
	kv := kernelView{sets: map[string][]string{}, chains: map[string]nftChain{}, rules: map[string][]string{}}
	for _, obj := range doc.Nftables {
		switch {
		case obj["set"] != nil:
			var s struct {
				Name string            `json:"name"`
				Elem []json.RawMessage `json:"elem"`
			}
			mustJSON(t, obj["set"], &s)
			els := []string{}
			for _, e := range s.Elem {
				els = append(els, elemString(t, e))
			}
			slices.Sort(els)
			kv.sets[s.Name] = els
		case obj["chain"] != nil:
			var c struct {
				Name string `json:"name"`
				nftChain
			}
			mustJSON(t, obj["chain"], &c)
			kv.chains[c.Name] = c.nftChain
		case obj["rule"] != nil:
			var r struct {
				Chain   string `json:"chain"`
				Comment string `json:"comment"`
			}
			mustJSON(t, obj["rule"], &r)
			kv.rules[r.Chain] = append(kv.rules[r.Chain], r.Comment)
		}
	}
	return kv
}

func mustJSON(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
}

// elemString renders an nft JSON set element as a CIDR ("10.0.0.7" is a
// /32, ranges stay "lo-hi").
func elemString(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if json.Unmarshal(raw, &s) == nil {
		a := netip.MustParseAddr(s)
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	var p struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	mustJSON(t, raw, &p)
	switch {
	case p.Prefix != nil:
		return fmt.Sprintf("%s/%d", p.Prefix.Addr, p.Prefix.Len)
	case len(p.Range) == 2:
		return p.Range[0] + "-" + p.Range[1]
	}
	t.Fatalf("unknown element %s", raw)
	return ""
}

func strs(ps []netip.Prefix) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}
