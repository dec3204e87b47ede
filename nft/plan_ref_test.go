package nft

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"go4.org/netipx"
)

// The planning and cache bookkeeping as they were, on raw elements: the
// reference that planning by binary search, and editing the cached
// intervals instead of rebuilding them, must match exactly.

// planAddLinear is planAdd as it was: a scan of every interval per prefix.
func planAddLinear(have []interval, ps []netip.Prefix) (del, put []nftables.SetElement, err error) {
	for _, p := range ps {
		lo, hi := p.Addr(), netipx.PrefixLastIP(p)
		covered := false
		var contained []interval
		for _, iv := range have {
			switch {
			case iv.hi.Compare(lo) < 0 || iv.lo.Compare(hi) > 0:
			case iv.lo.Compare(lo) <= 0 && iv.hi.Compare(hi) >= 0:
				covered = true
			case iv.lo.Compare(lo) >= 0 && iv.hi.Compare(hi) <= 0:
				contained = append(contained, iv)
			default:
				return nil, nil, fmt.Errorf("%s partly overlaps existing range %s-%s", p, iv.lo, iv.hi)
			}
		}
		if covered {
			continue
		}
		for _, iv := range contained {
			del = append(del, iv.elements...)
		}
		put = append(put, prefixElements(p)...)
	}
	return del, put, nil
}

// planRemoveLinear is planRemove as it was.
func planRemoveLinear(have []interval, ps []netip.Prefix) []nftables.SetElement {
	var del []nftables.SetElement
	for _, p := range ps {
		for _, iv := range have {
			if iv.isPrefix(p) {
				del = append(del, iv.elements...)
				break
			}
		}
	}
	return del
}

// afterUpdate returns els as the kernel holds them once del and put are
// committed: an element is its key and whether it ends an interval, and
// the kernel holds each at most once.
func afterUpdate(els, del, put []nftables.SetElement) []nftables.SetElement {
	id := func(e nftables.SetElement) string {
		if e.IntervalEnd {
			return "e" + string(e.Key)
		}
		return "s" + string(e.Key)
	}
	gone := make(map[string]bool, len(del))
	for _, e := range del {
		gone[id(e)] = true
	}
	out := make([]nftables.SetElement, 0, len(els)+len(put))
	have := make(map[string]bool, len(els)+len(put))
	for _, e := range els {
		if k := id(e); !gone[k] && !have[k] {
			have[k] = true
			out = append(out, e)
		}
	}
	for _, e := range put {
		if k := id(e); !have[k] {
			have[k] = true
			out = append(out, e)
		}
	}
	return out
}

// planStep is one incremental update: prefixes added or removed.
type planStep struct {
	add bool
	ps  []netip.Prefix
}

// checkPlanSteps runs steps against a set that starts with els (one
// family), once as updateRemote does it now (plan by binary search,
// cached intervals edited, read afresh when not cacheable or after an
// error) and once as it was (raw elements, linear plans, afterUpdate,
// parsed again every step), and fails on the first difference: in the
// batch, the error, or the intervals the cache holds. Steps' prefixes of
// the other family are ignored.
func checkPlanSteps(t *testing.T, six bool, els []nftables.SetElement, steps []planStep) {
	t.Helper()
	var cached []interval
	valid := false // else read afresh, as when the generation moved
	for n, st := range steps {
		ref := parseIntervals(els)
		have, keep := cached, valid
		if !valid {
			have = parseIntervals(els)
			keep = cacheable(els, have)
		}
		if !sameIntervals(have, ref) {
			t.Fatalf("step %d: cache holds\n%s\nthe elements read\n%s", n, ivString(have), ivString(ref))
		}
		ps := familyOf(st, six)
		var (
			pl             plan
			err, refErr    error
			refDel, refPut []nftables.SetElement
		)
		if st.add {
			pl, err = planAdd(have, ps)
			refDel, refPut, refErr = planAddLinear(ref, ps)
		} else {
			pl = planRemove(have, ps)
			refDel = planRemoveLinear(ref, ps)
		}
		if fmt.Sprint(err) != fmt.Sprint(refErr) {
			t.Fatalf("step %d (%v): error %v, want %v", n, st, err, refErr)
		}
		if err != nil {
			cached, valid = nil, false // updateRemote drops the cache
			continue
		}
		if !reflect.DeepEqual(pl.del, refDel) || !reflect.DeepEqual(pl.put, refPut) {
			t.Fatalf("step %d (%v) on %s:\ndel %v put %v\nwant del %v put %v", n, st, ivString(have), pl.del, pl.put, refDel, refPut)
		}
		els = afterUpdate(els, refDel, refPut)
		if !keep {
			cached, valid = nil, false
			continue
		}
		before := slices.Clone(have) // apply edits have in place
		cached, valid = pl.apply(have), true
		if after := parseIntervals(els); !sameIntervals(cached, after) {
			t.Fatalf("step %d (%v) on %s:\ncache edited to\n%s\nkernel would hold\n%s", n, st, ivString(before), ivString(cached), ivString(after))
		}
		if !cacheable(els, cached) {
			t.Fatalf("step %d (%v): edits left a set that is not cacheable: %v", n, st, els)
		}
	}
}

func (st planStep) String() string {
	if st.add {
		return fmt.Sprint("add ", st.ps)
	}
	return fmt.Sprint("remove ", st.ps)
}

// ivString renders intervals compactly for failure messages: lo-hi and
// the keys of the elements, an end marked with a trailing ']'.
func ivString(ivs []interval) string {
	var b strings.Builder
	for _, iv := range ivs {
		fmt.Fprintf(&b, " %s-%s(", iv.lo, iv.hi)
		for _, e := range iv.elements {
			a, _ := netip.AddrFromSlice(e.Key)
			if e.IntervalEnd {
				fmt.Fprintf(&b, " %s]", a)
			} else {
				fmt.Fprintf(&b, " [%s", a)
			}
		}
		b.WriteString(" )")
	}
	return b.String()
}

// sameIntervals is reflect.DeepEqual but for an empty list and none.
func sameIntervals(a, b []interval) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}

// familyOf returns st's prefixes of one family as updateRemote passes them
// to planning: normalised for an addition, canonical for a removal.
func familyOf(st planStep, six bool) []netip.Prefix {
	canon := canonical
	if st.add {
		canon = normalize
	}
	v4, v6, _ := canon(st.ps)
	if six {
		return v6
	}
	return v4
}

// handMade turns fuzz input into raw IPv4 elements as a hand (nft, or any
// netlink writer) could have added them: records of a kind byte and two
// keys; kind 0 is a lone start at the first key, 1 a lone end, otherwise a
// start at the first and an end at the second (a range, well-formed or not).
func handMade(b []byte) []nftables.SetElement {
	var out []nftables.SetElement
	for ; len(b) >= 9 && len(out) < 32; b = b[9:] {
		k1, k2 := b[1:5:5], b[5:9:9]
		switch b[0] % 4 {
		case 0:
			out = append(out, nftables.SetElement{Key: k1})
		case 1:
			out = append(out, nftables.SetElement{Key: k1, IntervalEnd: true})
		default:
			out = append(out, nftables.SetElement{Key: k1}, nftables.SetElement{Key: k2, IntervalEnd: true})
		}
	}
	return out
}

// TestPlanMatchesReference draws sets of nested and adjacent prefixes of
// both families, with hand-made ranges and stray elements now and then, and
// random sequences of additions and removals of one to a few prefixes.
func TestPlanMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	prefix := func(v6 bool) netip.Prefix {
		if r.IntN(40) == 0 { // open to the top: no end element
			if v6 {
				return netip.MustParsePrefix("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120")
			}
			return netip.MustParsePrefix("255.255.255.0/24")
		}
		bits := 20 + r.IntN(9)
		a := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(16) << 4), 0})
		if v6 {
			bits += 96
			a = netip.AddrFrom16([16]byte{0xfd, 0, 10: byte(r.IntN(4)), 11: byte(r.IntN(16) << 4)})
		}
		return netip.PrefixFrom(a, bits).Masked()
	}
	for round := range 1000 {
		v6 := round%4 == 3
		var initial []netip.Prefix
		for range r.IntN(20) {
			initial = append(initial, prefix(v6))
		}
		n4, n6, _ := normalize(initial)
		els := intervalElements(append(n4, n6...))
		if !v6 && r.IntN(2) == 0 {
			b := make([]byte, 9*(1+r.IntN(3)))
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			for i := 0; i < len(b); i += 9 { // among the prefixes
				b[i+1], b[i+2], b[i+5], b[i+6] = 10, b[i+2]%4, 10, b[i+6]%4
			}
			els = append(els, handMade(b)...)
			r.Shuffle(len(els), func(i, j int) { els[i], els[j] = els[j], els[i] })
		}
		var steps []planStep
		for range r.IntN(30) {
			st := planStep{add: r.IntN(2) == 0}
			for range 1 + r.IntN(3) {
				st.ps = append(st.ps, prefix(v6))
			}
			steps = append(steps, st)
		}
		t.Run(fmt.Sprint(round), func(t *testing.T) { checkPlanSteps(t, v6, els, steps) })
		if t.Failed() {
			return
		}
	}
}
