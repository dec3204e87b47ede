package nft

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestSetCacheMatchesKernel runs random incremental updates against a
// real table and its guard, with nft writing behind the Manager's back now
// and then (a hand-made range, a deleted element, in either table; an
// Apply), and checks every step
// against the kernel: the batch did to the elements just what planning
// from a fresh read of them, as it was done before the cache, would have
// done (or failed the same way), and a cache left behind holds exactly
// the intervals the kernel now has.
func TestSetCacheMatchesKernel(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	r := rand.New(rand.NewPCG(7, 8))
	prefix := func() netip.Prefix {
		bits := 20 + r.IntN(9)
		a := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(16) << 4), 0})
		if r.IntN(4) == 0 {
			bits += 96
			a = netip.AddrFrom16([16]byte{0xfd, 0, 10: byte(r.IntN(4)), 11: byte(r.IntN(16) << 4)})
		}
		return netip.PrefixFrom(a, bits).Masked()
	}
	state := func() State {
		st := State{Local: pfx("10.244.1.0/24")}
		for range r.IntN(30) {
			st.Remote = append(st.Remote, prefix())
		}
		return st
	}
	if err := m.Apply(state()); err != nil {
		t.Fatal(err)
	}

	tables := []string{m.table.Name, m.guard.Name}
	fromCache, refused, behind := 0, 0, 0
	for n := range 400 {
		switch k := r.IntN(40); {
		case k == 0:
			if err := m.Apply(state()); err != nil {
				t.Fatal(err)
			}
			continue
		case k <= 4:
			// Overlapping anything already there, it is refused: fine.
			lo := netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))})
			hi := lo
			for range 1 + r.IntN(3000) {
				hi = hi.Next()
			}
			if _, err := ns.try("nft", "add", "element", "inet", tables[r.IntN(2)], "remote4", fmt.Sprintf("{ %s-%s }", lo, hi)); err == nil {
				behind++
			}
			continue
		case k == 5:
			if _, err := ns.try("nft", "delete", "element", "inet", tables[r.IntN(2)], "remote4", fmt.Sprintf("{ %s }", prefix())); err == nil {
				behind++
			}
			continue
		}
		st := planStep{add: r.IntN(2) == 0}
		for range 1 + r.IntN(3) {
			st.ps = append(st.ps, prefix())
		}
		if m.cache != nil && m.cache.gen == currentGen(t, m) {
			fromCache++
		}
		before := map[string]map[string][]nftables.SetElement{}
		for _, tn := range tables {
			before[tn] = readRemoteElements(t, m, tn)
		}
		var err error
		if st.add {
			err = m.AddRemote(st.ps)
		} else {
			err = m.RemoveRemote(st.ps)
		}

		// As it was: plan from the elements read, table by table, v4
		// first, stop at the first error; the whole batch or nothing.
		want := map[string]map[string][]nftables.SetElement{}
		var wantErr error
		for _, tn := range tables {
			want[tn] = map[string][]nftables.SetElement{}
			for _, name := range []string{SetRemote4, SetRemote6} {
				ps, have := familyOf(st, name == SetRemote6), parseIntervals(before[tn][name])
				want[tn][name] = before[tn][name]
				if len(ps) == 0 || wantErr != nil {
					continue
				}
				if st.add {
					var del, put []nftables.SetElement
					if del, put, wantErr = planAddLinear(have, ps); wantErr == nil {
						want[tn][name] = afterUpdate(before[tn][name], del, put)
					}
				} else {
					want[tn][name] = afterUpdate(before[tn][name], planRemoveLinear(have, ps), nil)
				}
			}
		}
		if wantErr != nil {
			want = before
		}
		if err != nil {
			refused++
		}
		if (err == nil) != (wantErr == nil) || err != nil && !strings.Contains(err.Error(), wantErr.Error()) {
			t.Fatalf("step %d (%v): error %v, want %v", n, st, err, wantErr)
		}
		for _, tn := range tables {
			after := readRemoteElements(t, m, tn)
			for name, els := range want[tn] {
				if got, want := ivString(parseIntervals(after[name])), ivString(parseIntervals(els)); got != want {
					t.Fatalf("step %d (%v): %s %s holds\n%s\nwant\n%s", n, st, tn, name, got, want)
				}
			}
			if m.cache == nil {
				continue
			}
			if gen := currentGen(t, m); gen != m.cache.gen {
				t.Fatalf("step %d (%v): generation %d, cache at %d", n, st, gen, m.cache.gen)
			}
			tc := m.cache.tables[tn]
			if tc == nil {
				t.Fatalf("step %d (%v): cache without table %s", n, st, tn)
			}
			for name, ivs := range tc.intervals {
				if got, want := ivString(ivs), ivString(parseIntervals(after[name])); got != want {
					t.Fatalf("step %d (%v): cache of %s %s holds\n%s\nthe kernel\n%s", n, st, tn, name, got, want)
				}
			}
		}
	}
	t.Logf("%d updates planned from the cache, %d refused, %d hand-made changes", fromCache, refused, behind)
	if fromCache < 100 {
		t.Fatalf("only %d updates planned from the cache", fromCache)
	}
}

// currentGen asks for the namespace's generation on a socket of its own.
func currentGen(t *testing.T, m *Manager) uint32 {
	t.Helper()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: m.netnsFD})
	if err != nil {
		t.Fatal(err)
	}
	defer m.release(c.Close)
	gen, err := queryGeneration(c)
	if err != nil {
		t.Fatal(err)
	}
	return gen
}

// readRemoteElements dumps both remote sets' elements of table on a
// connection of its own (reading commits nothing, so the cache stays
// valid).
func readRemoteElements(t *testing.T, m *Manager, table string) map[string][]nftables.SetElement {
	t.Helper()
	conn, err := m.conn()
	if err != nil {
		t.Fatal(err)
	}
	defer m.release(conn.CloseLasting)
	sets, err := listSets(conn, &nftables.Table{Name: table, Family: nftables.TableFamilyINet})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]nftables.SetElement{}
	for _, name := range []string{SetRemote4, SetRemote6} {
		if out[name], err = conn.GetSetElements(sets[name]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
