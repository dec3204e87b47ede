package nft

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
)

// TestSetCacheFollowsOtherWriters checks that incremental updates planned
// from the cache behave exactly as if they had read the set: used while
// only the Manager commits, dropped as soon as anything else does (nft on
// the command line here, an Apply), whatever that changed.
func TestSetCacheFollowsOtherWriters(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	if err := m.Apply(testState()); err != nil {
		t.Fatal(err)
	}
	remote4 := func() []string { return listTable(t, ns, "crosswire").sets["remote4"] }

	if err := m.AddRemote(pfx("10.244.4.0/24")); err != nil {
		t.Fatal(err)
	}
	if m.cache == nil {
		t.Fatal("no cache after an update nobody else interleaved with")
	}
	if gen := currentGen(t, m); gen != m.cache.gen {
		t.Fatalf("generation %d, cache at %d", gen, m.cache.gen)
	}
	// From the cache: remove one, add one, and a covered prefix is a no-op.
	if err := m.RemoveRemote(pfx("10.244.2.0/24")); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRemote(pfx("10.244.5.0/24", "10.244.4.128/25")); err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.244.3.0/24", "10.244.4.0/24", "10.244.5.0/24"}; !slices.Equal(remote4(), want) {
		t.Fatalf("remote4 = %v, want %v", remote4(), want)
	}
	// The cache reads as the kernel does.
	conn, err := m.conn()
	if err != nil {
		t.Fatal(err)
	}
	defer m.release(conn.CloseLasting)
	sets, err := listSets(conn, m.table)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := readIntervals(conn, sets[SetRemote4])
	if err != nil {
		t.Fatal(err)
	}
	if m.cache == nil {
		t.Fatal("cache dropped without another writer")
	}
	if cached := m.cache.tables[m.table.Name].intervals[SetRemote4]; !reflect.DeepEqual(ivPrefixes(cached), ivPrefixes(fresh)) {
		t.Fatalf("cache holds %v, kernel %v", ivPrefixes(cached), ivPrefixes(fresh))
	}

	// A hand-made range behind the Manager's back: the next update must
	// see it (a partial overlap is refused, as with a fresh read).
	ns.nft(t, "add", "element", "inet", "crosswire", "remote4", "{ 10.244.6.128-10.244.7.9 }")
	if err := m.AddRemote(pfx("10.244.6.0/24")); err == nil || !strings.Contains(err.Error(), "partly overlaps") {
		t.Fatalf("AddRemote over a hand-made range: %v, want a partial-overlap error", err)
	}
	// A deletion behind its back: removing the element again is skipped,
	// not an error, and the other prefixes stay.
	ns.nft(t, "delete", "element", "inet", "crosswire", "remote4", "{ 10.244.5.0/24 }")
	if err := m.RemoveRemote(pfx("10.244.5.0/24", "10.244.3.0/24")); err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.244.4.0/24", "10.244.6.128-10.244.7.9"}; !slices.Equal(remote4(), want) {
		t.Fatalf("remote4 = %v, want %v", remote4(), want)
	}
	// An Apply replaces the table: the cache must not outlive it.
	if err := m.Apply(testState()); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRemote(pfx("10.244.7.0/24")); err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.244.2.0/24", "10.244.3.0/24", "10.244.7.0/24"}; !slices.Equal(remote4(), want) {
		t.Fatalf("remote4 after Apply = %v, want %v", remote4(), want)
	}
}

func ivPrefixes(ivs []interval) [][]netip.Prefix {
	var out [][]netip.Prefix
	for _, iv := range ivs {
		out = append(out, iv.prefixes())
	}
	return out
}

// TestCloseClosesReleasedSockets: sockets that release keeps open for a
// while are closed by Close at the latest.
func TestCloseClosesReleasedSockets(t *testing.T) {
	ns := newNS(t)
	m, err := New(validConfig(), WithNetNS(ns.fd()))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(testState()); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveRemote(pfx("10.244.2.0/24")); err != nil {
		t.Fatal(err)
	}
	m.pendingMu.Lock()
	n := len(m.pending)
	m.pendingMu.Unlock()
	if n == 0 {
		t.Fatal("no socket pending after two operations")
	}
	if m.genSock == nil {
		t.Fatal("no generation socket kept after an update")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if m.genSock != nil {
		t.Fatal("generation socket still open after Close")
	}
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	if len(m.pending) != 0 {
		t.Fatalf("%d sockets still open after Close", len(m.pending))
	}
}

// TestGenerationSocketRedials: an update whose generation query fails
// still applies, uncached, and the next one dials a new socket and caches
// again.
func TestGenerationSocketRedials(t *testing.T) {
	ns := newNS(t)
	m := newTestManager(t, ns)
	if err := m.Apply(testState()); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRemote(pfx("10.244.4.0/24")); err != nil {
		t.Fatal(err)
	}
	broken := m.genSock
	if err := broken.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRemote(pfx("10.244.5.0/24")); err != nil {
		t.Fatal(err)
	}
	if m.cache != nil || m.genSock != nil {
		t.Fatalf("after a failed generation query: cache %v, socket %v; want neither", m.cache, m.genSock)
	}
	if err := m.RemoveRemote(pfx("10.244.4.0/24")); err != nil {
		t.Fatal(err)
	}
	if m.cache == nil || m.genSock == nil || m.genSock == broken {
		t.Fatal("no new socket, or no cache, after the next update")
	}
	if want := []string{"10.244.2.0/24", "10.244.3.0/24", "10.244.5.0/24"}; !slices.Equal(listTable(t, ns, "crosswire").sets["remote4"], want) {
		t.Fatalf("remote4 = %v, want %v", listTable(t, ns, "crosswire").sets["remote4"], want)
	}
}

// TestCacheable: only sets whose intervals are each encoded as the Manager
// encodes a prefix can be kept up to date by editing their intervals.
func TestCacheable(t *testing.T) {
	for _, tt := range []struct {
		name string
		els  []nftables.SetElement
		want bool
	}{
		{"empty", nil, true},
		{"prefixes, adjacent", intervalElements(pfx("10.0.0.0/24", "10.0.1.0/24")), true},
		{"open to the top", intervalElements(pfx("10.0.0.0/24", "255.255.255.0/24")), true},
		{"v6 open to the top", intervalElements(pfx("fd00::/64", "ffff::/16")), true},
		{"nft's no-op end at the lowest address", append(intervalElements(pfx("10.0.0.0/24")), end("0.0.0.0")), true},
		{"hand-made range", []nftables.SetElement{start("10.0.6.128"), end("10.0.7.10")}, true},
		{"stray end in a gap", append(intervalElements(pfx("10.0.0.0/24")), end("10.0.5.0")), false},
		{"lone start cut by the next", []nftables.SetElement{start("10.0.0.128"), start("10.0.1.0"), end("10.0.2.0")}, false},
		{"key of no address", []nftables.SetElement{{Key: []byte{10, 0, 0}}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := cacheable(tt.els, parseIntervals(tt.els)); got != tt.want {
				t.Fatalf("cacheable(%v) = %t, want %t", tt.els, got, tt.want)
			}
		})
	}
}
