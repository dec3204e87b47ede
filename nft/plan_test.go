package nft

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/google/nftables"
)

func TestPlanAdd(t *testing.T) {
	have := parseIntervals(intervalElements(pfx("10.1.0.0/16", "10.2.0.0/16", "10.9.0.0/16")))
	pl, err := planAdd(have, pfx("10.0.0.0/14", "10.9.1.0/24", "10.20.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	wantDel := intervalElements(pfx("10.1.0.0/16", "10.2.0.0/16"))
	wantPut := intervalElements(pfx("10.0.0.0/14", "10.20.0.0/16"))
	if !reflect.DeepEqual(pl.del, wantDel) || !reflect.DeepEqual(pl.put, wantPut) {
		t.Fatalf("planAdd: del %v put %v; want del %v put %v", pl.del, pl.put, wantDel, wantPut)
	}
	// Two edits: the merge.
	want := parseIntervals(intervalElements(pfx("10.0.0.0/14", "10.9.0.0/16", "10.20.0.0/16")))
	if got := pl.apply(have); !reflect.DeepEqual(got, want) {
		t.Fatalf("intervals after planAdd:\n%s\nwant\n%s", ivString(got), ivString(want))
	}
	// A hand-made range that straddles a prefix boundary cannot be replaced
	// without dropping addresses.
	odd := parseIntervals([]nftables.SetElement{start("10.0.0.128"), end("10.0.1.128")})
	if _, err := planAdd(odd, pfx("10.0.0.0/24")); err == nil {
		t.Fatal("planAdd accepted a partial overlap")
	}
}

func TestPlanRemove(t *testing.T) {
	have := parseIntervals(intervalElements(pfx("10.1.0.0/16", "10.2.0.0/16", "255.255.255.255/32")))
	del := planRemove(have, pfx("10.2.0.0/16", "10.3.0.0/16", "10.1.0.0/24", "255.255.255.255/32")).del
	if want := intervalElements(pfx("10.2.0.0/16", "255.255.255.255/32")); !reflect.DeepEqual(del, want) {
		t.Fatalf("planRemove = %v, want %v", del, want)
	}
}

// TestPlanApplyOneEdit: one prefix, the common case, edits the list in
// place, wherever it goes.
func TestPlanApplyOneEdit(t *testing.T) {
	for _, tt := range []struct {
		name      string
		have, add []netip.Prefix
		remove    []netip.Prefix
		want      []netip.Prefix
	}{
		{"add first", pfx("10.1.0.0/16", "10.2.0.0/16"), pfx("10.0.0.0/16"), nil, pfx("10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16")},
		{"add between", pfx("10.1.0.0/16", "10.3.0.0/16"), pfx("10.2.0.0/16"), nil, pfx("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16")},
		{"add last, to the top", pfx("10.1.0.0/16"), pfx("255.0.0.0/8"), nil, pfx("10.1.0.0/16", "255.0.0.0/8")},
		{"add to none", nil, pfx("10.1.0.0/16"), nil, pfx("10.1.0.0/16")},
		{"replace contained", pfx("10.0.0.0/16", "10.1.0.0/24", "10.1.9.0/24", "10.2.0.0/16"), pfx("10.1.0.0/16"), nil, pfx("10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16")},
		{"covered: no edit", pfx("10.0.0.0/8"), pfx("10.1.0.0/16"), nil, pfx("10.0.0.0/8")},
		{"remove first", pfx("10.1.0.0/16", "10.2.0.0/16"), nil, pfx("10.1.0.0/16"), pfx("10.2.0.0/16")},
		{"remove last", pfx("10.1.0.0/16", "10.2.0.0/16"), nil, pfx("10.2.0.0/16"), pfx("10.1.0.0/16")},
		{"remove only", pfx("10.1.0.0/16"), nil, pfx("10.1.0.0/16"), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			have := parseIntervals(intervalElements(tt.have))
			pl := planRemove(have, tt.remove)
			if tt.add != nil {
				var err error
				if pl, err = planAdd(have, tt.add); err != nil {
					t.Fatal(err)
				}
			}
			want := parseIntervals(intervalElements(tt.want))
			if got := pl.apply(have); !sameIntervals(got, want) {
				t.Fatalf("got\n%s\nwant\n%s", ivString(got), ivString(want))
			}
		})
	}
}
