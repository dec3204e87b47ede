package nft

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"
)

// quadraticDiff is the membership comparison diffPrefixes replaced: a
// search of the other list per prefix. It is the reference for the test
// and the baseline for the benchmark.
func quadraticDiff(want, got []netip.Prefix) (missing, unexpected []netip.Prefix) {
	for _, p := range want {
		if !slices.Contains(got, p) {
			missing = append(missing, p)
		}
	}
	for _, p := range got {
		if !slices.Contains(want, p) {
			unexpected = append(unexpected, p)
		}
	}
	return missing, unexpected
}

// podCIDRs returns n distinct /24s, one per node, in address order (as the
// engine renders them and the kernel returns them).
func podCIDRs(n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	for i := range out {
		out[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
	}
	return out
}

// TestDiffPrefixesMatchesReference: on random lists (shared, dropped,
// added, reordered, duplicated, mixed families and lengths) the merge
// finds exactly what the quadratic search found (sorted).
func TestDiffPrefixesMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pool := append(podCIDRs(40), netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("fd00:10::/64"),
		netip.MustParsePrefix("fd00:11::/64"), netip.MustParsePrefix("::ffff:10.0.0.0/120"))
	pick := func() []netip.Prefix {
		var out []netip.Prefix
		for range rng.IntN(len(pool)) {
			out = append(out, pool[rng.IntN(len(pool))])
		}
		switch rng.IntN(3) {
		case 0: // a set as Render gives it
			slices.SortFunc(out, netip.Prefix.Compare)
			out = slices.Compact(out)
		case 1: // sorted, with duplicates
			slices.SortFunc(out, netip.Prefix.Compare)
		}
		return out
	}
	for i := range 2000 {
		want, got := pick(), pick()
		if i%5 == 0 {
			got = slices.Clone(want) // in sync
		}
		wantIn, gotIn := slices.Clone(want), slices.Clone(got)
		m, u := diffPrefixes(want, got)
		rm, ru := quadraticDiff(want, got)
		slices.SortFunc(rm, netip.Prefix.Compare)
		slices.SortFunc(ru, netip.Prefix.Compare)
		if !slices.Equal(want, wantIn) || !slices.Equal(got, gotIn) {
			t.Fatal("diffPrefixes changed its arguments")
		}
		if !slices.Equal(m, rm) || !slices.Equal(u, ru) {
			t.Fatalf("want %v got %v:\nmissing %v unexpected %v\nreference: missing %v unexpected %v", want, got, m, u, rm, ru)
		}
	}
}

func TestDiffPrefixesReports(t *testing.T) {
	p := netip.MustParsePrefix
	want := []netip.Prefix{p("10.244.1.0/24"), p("10.244.2.0/24"), p("10.244.3.0/24")}
	got := []netip.Prefix{p("10.244.1.0/24"), p("10.244.3.0/24"), p("10.244.9.0/24")}
	m, u := diffPrefixes(want, got)
	if !slices.Equal(m, want[1:2]) || !slices.Equal(u, got[2:]) {
		t.Fatalf("missing %v unexpected %v", m, u)
	}
	if m, u := diffPrefixes(want, slices.Clone(want)); m != nil || u != nil {
		t.Fatalf("in sync: missing %v unexpected %v", m, u)
	}
	// Same members, other order: in sync too.
	if m, u := diffPrefixes(want, []netip.Prefix{want[2], want[0], want[1]}); m != nil || u != nil {
		t.Fatalf("reordered: missing %v unexpected %v", m, u)
	}
}

func shuffled(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// BenchmarkDiffPrefixes compares a resync's set comparison at 100, 1000
// and 5000 prefixes (one per node) with the quadratic search it replaced,
// in sync (every resync of a healthy node), with one prefix each missing
// and unexpected, and the same unsorted (sorted first: a set that mixes
// prefix lengths comes back from the kernel in address order). Read the ratio of linear to quadratic per size.
func BenchmarkDiffPrefixes(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		want := podCIDRs(n)
		// The first prefix missing, one past the last unexpected: sorted.
		drifted := append(slices.Clone(want[1:]), netip.MustParsePrefix("10.255.255.0/24"))
		for _, c := range []struct {
			name string
			got  []netip.Prefix
		}{{"in-sync", slices.Clone(want)}, {"drift", drifted}, {"drift-unsorted", shuffled(drifted)}} {
			for _, impl := range []struct {
				name string
				fn   func(want, got []netip.Prefix) ([]netip.Prefix, []netip.Prefix)
			}{{"linear", diffPrefixes}, {"quadratic", quadraticDiff}} {
				b.Run(fmt.Sprintf("%s/%s/n=%d", c.name, impl.name, n), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						impl.fn(want, c.got)
					}
				})
			}
		}
	}
}

// TestDriftKeepsReadback: Drift keeps what it read (set sizes and rule
// counters, the same figures SetSizes and Counters read), so status and
// metrics can show them without reading the table again.
func TestDriftKeepsReadback(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	if rb := m.LastReadback(); !rb.At.IsZero() || rb.Sizes != nil {
		t.Fatalf("readback before any Drift: %+v", rb)
	}
	st := State{Local: pfx("10.244.1.0/24", "fd00:10:244:1::/64"), Remote: pfx("10.244.2.0/24", "10.244.3.0/24", "10.244.9.0/24")}
	if _, err := m.Drift(st); err != nil {
		t.Fatal(err)
	}
	if rb := m.LastReadback(); rb.At.IsZero() || len(rb.Sizes) != 0 || len(rb.Counters) != 0 {
		t.Fatalf("readback of a missing table: %+v", rb)
	}
	if err := m.Apply(st); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	assertNoDrift(t, m, st)
	rb := m.LastReadback()
	if rb.At.Before(before) {
		t.Fatalf("readback from %v, older than the Drift at %v", rb.At, before)
	}
	sizes, err := m.SetSizes()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(rb.Sizes, sizes) || rb.Sizes[SetRemote4] != 3 || rb.Sizes[SetLocal6] != 1 {
		t.Fatalf("readback sizes %v, SetSizes %v", rb.Sizes, sizes)
	}
	counters, err := m.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(rb.Counters, counters) || len(counters) == 0 {
		t.Fatalf("readback counters %v, Counters %v", rb.Counters, counters)
	}
	// Incremental changes do not read the table: the readback stays
	// the last Drift's until the next one.
	if err := m.RemoveRemote(pfx("10.244.3.0/24")); err != nil {
		t.Fatal(err)
	}
	if got := m.LastReadback().Sizes[SetRemote4]; got != 3 {
		t.Fatalf("readback changed without a Drift: remote4 %d", got)
	}
	st.Remote = pfx("10.244.2.0/24", "10.244.9.0/24")
	assertNoDrift(t, m, st)
	if got := m.LastReadback().Sizes[SetRemote4]; got != 2 {
		t.Fatalf("readback after the next Drift: remote4 %d, want 2", got)
	}
}

// BenchmarkDrift is a resync's whole table check (render, read back, compare)
// of an in-sync table with n remote prefixes, under the manager's lock;
// SetSizes is the fresh read `crosswire status` makes of the same sets.
// Besides wall time it reports the process's CPU time per operation
// (user + system, the kernel's dump included), which a loaded machine
// distorts less.
func BenchmarkDrift(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		ns := benchNetNS(b)
		m, err := New(validConfig(), WithNetNS(int(ns)))
		if err != nil {
			b.Fatal(err)
		}
		st := State{Local: pfx("10.244.0.0/24")}
		for i := range n {
			st.Remote = append(st.Remote, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + i/128), byte(2 * (i % 128)), 0}), 24))
		}
		if err := m.Apply(st); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("Drift/%d", n), func(b *testing.B) {
			cpu := cpuTime(b)
			for b.Loop() {
				if d, err := m.Drift(st); err != nil || len(d) != 0 {
					b.Fatalf("Drift = %q, %v", d, err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
		b.Run(fmt.Sprintf("SetSizes/%d", n), func(b *testing.B) {
			cpu := cpuTime(b)
			for b.Loop() {
				if s, err := m.SetSizes(); err != nil || s[SetRemote4] != n {
					b.Fatalf("SetSizes = %v, %v", s, err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
		})
		m.Close()
	}
}

// cpuTime is the process's user + system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
