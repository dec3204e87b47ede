package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
)

// ErrNotApplied is returned by incremental updates when crosswire's table
// or one of its sets is missing: the caller must Apply the full state.
var ErrNotApplied = errors.New("crosswire table not programmed")

// maxElementsPerMessage keeps each netlink message of a batch well below
// the socket buffer even with thousands of nodes (nft chunks similarly).
const maxElementsPerMessage = 1024

// State is the desired content of the sets. Prefixes of both families,
// mixed; the package splits them by family.
type State struct {
	Local  []netip.Prefix // this node's pod CIDRs
	Remote []netip.Prefix // every other node's pod CIDRs
}

type options struct {
	netnsFD int
}

// Option configures a Manager.
type Option func(*options)

// WithNetNS programs the table in the network namespace referred to by fd
// instead of the current one. The caller keeps ownership of fd.
func WithNetNS(fd int) Option {
	return func(o *options) { o.netnsFD = fd }
}

// Manager programs crosswire's table. It is safe for concurrent use; calls
// are serialised so that an incremental update never interleaves with a
// full Apply's read-modify-write.
type Manager struct {
	cfg     Config
	table   *nftables.Table // crosswire's table
	guard   *nftables.Table // its guard: guard.go
	netnsFD int

	mu      sync.Mutex
	closed  bool
	cache   *setCache                // incremental updates' view of the remote sets; setcache.go
	genSock *netlink.Conn            // for generation queries; generation.go
	updConn *nftables.Conn           // incremental updates' socket, kept open; incremental.go
	last    atomic.Pointer[Readback] // what the last Drift read; drift.go
	ports   portIDs                  // of the sockets conn opened; watch.go

	// Sockets release has yet to close.
	pendingMu   sync.Mutex
	pending     map[uint64]func()
	nextPending uint64
	closing     sync.WaitGroup
}

// New validates cfg and returns a Manager. It does not touch the kernel.
func New(cfg Config, opts ...Option) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return &Manager{
		cfg:     cfg,
		table:   &nftables.Table{Name: cfg.Table, Family: nftables.TableFamilyINet},
		guard:   &nftables.Table{Name: cfg.GuardTable(), Family: nftables.TableFamilyINet},
		netnsFD: o.netnsFD,
	}, nil
}

// tables are the tables the Manager owns, in the order renderAll gives
// their rulesets.
func (m *Manager) tables() [2]*nftables.Table { return [2]*nftables.Table{m.table, m.guard} }

// conn returns a fresh batch builder for one operation, on a socket of its
// own that the caller hands to release when done. A Conn keeps queued
// messages and its first serialisation error until a Flush, and a failed
// batch can leave unread acks on its socket; a Conn (and socket) per
// operation means a batch that fails to build is dropped, never half-sent
// by the next operation, and no stale ack is read by it.
func (m *Manager) conn(opts ...nftables.ConnOption) (*nftables.Conn, error) {
	c, err := nftables.New(append([]nftables.ConnOption{nftables.AsLasting(), nftables.WithNetNSFd(m.netnsFD),
		nftables.WithSockOptions(m.recordPort)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("nftables connection: %w", err)
	}
	return c, nil
}

// release closes an operation's socket later, in the background. Closing
// a netfilter netlink socket while the kernel still holds what a commit
// deleted makes the close flush that release (nft_rcv_nl_event: an RCU
// grace period) under the commit mutex, so the next
// commit, say the AddRemote of the same Node update, waits for it. After
// releaseDelay the kernel has released it on its own and the close is
// instant. Close closes whatever is still pending at once.
func (m *Manager) release(close func() error) {
	m.closing.Add(1)
	m.pendingMu.Lock()
	defer m.pendingMu.Unlock()
	id := m.nextPending
	m.nextPending++
	run := func() {
		m.pendingMu.Lock()
		_, ok := m.pending[id]
		delete(m.pending, id)
		m.pendingMu.Unlock()
		if ok {
			_ = close()
			m.closing.Done()
		}
	}
	if m.pending == nil {
		m.pending = map[uint64]func(){}
	}
	m.pending[id] = run
	time.AfterFunc(releaseDelay, run)
}

// releaseDelay is how long release keeps a socket open: well past an RCU
// grace period.
const releaseDelay = 250 * time.Millisecond

// closePending closes every socket release still holds and waits for them.
func (m *Manager) closePending() {
	m.pendingMu.Lock()
	runs := make([]func(), 0, len(m.pending))
	for _, run := range m.pending {
		runs = append(runs, run)
	}
	m.pendingMu.Unlock()
	for _, run := range runs {
		run()
	}
	m.closing.Wait()
}

func (m *Manager) lock() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("nft manager closed")
	}
	return nil
}

// Apply replaces crosswire's table and its guard with the rendered state
// in one atomic batch: for each, add table (so the delete cannot fail),
// delete table, then add the table with all sets, elements, chains and
// rules. Packets see either the old tables or the new ones, never a
// half-built one. No other table is touched.
func (m *Manager) Apply(st State) error {
	rss, err := renderAll(m.cfg, st)
	if err != nil {
		return fmt.Errorf("render: %w", err)
	}
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()

	conn, err := m.conn(nftables.WithSockOptions(sendBuffer(applyBufferSize(rss))))
	if err != nil {
		return err
	}
	defer m.release(conn.CloseLasting)
	setID := uint32(1)
	for _, rs := range rss {
		conn.AddTable(rs.Table)
		conn.DelTable(rs.Table)
		if setID, err = queueRuleset(conn, rs, setID); err != nil {
			return fmt.Errorf("apply table %s: %w", rs.Table.Name, err)
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("apply tables %s and %s: %w", m.table.Name, m.guard.Name, err)
	}
	return nil
}

// queueRuleset queues the creation of rs (table included) on conn. Its
// sets get batch IDs from setID on, and it returns the next free one: IDs
// must be unique within a batch, whatever table a set is in.
func queueRuleset(conn *nftables.Conn, rs *Ruleset, setID uint32) (uint32, error) {
	table := conn.AddTable(&nftables.Table{Name: rs.Table.Name, Family: rs.Table.Family})
	setIDs := map[string]uint32{}
	for i, s := range rs.Sets {
		set := &nftables.Set{
			Table:    table,
			ID:       setID + uint32(i), // unique within the batch; avoids the library's global counter
			Name:     s.Name,
			KeyType:  s.KeyType,
			Interval: true,
			Comment:  s.Comment,
		}
		if err := conn.AddSet(set, nil); err != nil {
			return 0, fmt.Errorf("set %s: %w", s.Name, err)
		}
		if err := addElements(conn, set, s.Elements); err != nil {
			return 0, fmt.Errorf("set %s: %w", s.Name, err)
		}
		setIDs[s.Name] = set.ID
	}
	for _, c := range rs.Chains {
		hook, prio, policy := c.Hook, c.Priority, c.Policy
		chain := conn.AddChain(&nftables.Chain{
			Name:     c.Name,
			Table:    table,
			Type:     c.Type,
			Hooknum:  &hook,
			Priority: &prio,
			Policy:   &policy,
		})
		for _, r := range c.Rules {
			exprs, err := bindSets(r.Exprs, setIDs)
			if err != nil {
				return 0, fmt.Errorf("chain %s rule %q: %w", c.Name, r.Comment, err)
			}
			conn.AddRule(&nftables.Rule{
				Table:    table,
				Chain:    chain,
				Exprs:    exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, r.Comment),
			})
		}
	}
	return setID + uint32(len(rs.Sets)), nil
}

// bindSets copies exprs, giving each set lookup the batch ID of its set: a
// set created in the same batch is only reliably found by ID.
func bindSets(exprs []expr.Any, ids map[string]uint32) ([]expr.Any, error) {
	out := make([]expr.Any, len(exprs))
	for i, e := range exprs {
		if l, ok := e.(*expr.Lookup); ok {
			id, ok := ids[l.SetName]
			if !ok {
				return nil, fmt.Errorf("lookup of unknown set %q", l.SetName)
			}
			bound := *l
			bound.SetID = id
			e = &bound
		}
		out[i] = e
	}
	return out, nil
}

func addElements(conn *nftables.Conn, set *nftables.Set, els []nftables.SetElement) error {
	for chunk := range slices.Chunk(els, maxElementsPerMessage) {
		if err := conn.SetAddElements(set, chunk); err != nil {
			return err
		}
	}
	return nil
}

func deleteElements(conn *nftables.Conn, set *nftables.Set, els []nftables.SetElement) error {
	for chunk := range slices.Chunk(els, maxElementsPerMessage) {
		if err := conn.SetDeleteElements(set, chunk); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes crosswire's table and its guard, and nothing else. A
// missing table is not an error: the batch adds each first, so the delete
// always finds it.
func (m *Manager) Delete() error {
	if err := m.lock(); err != nil {
		return err
	}
	defer m.mu.Unlock()
	conn, err := m.conn()
	if err != nil {
		return err
	}
	defer m.release(conn.CloseLasting)
	for _, t := range m.tables() {
		conn.AddTable(t)
		conn.DelTable(t)
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("delete tables %s and %s: %w", m.table.Name, m.guard.Name, err)
	}
	return nil
}

// Close releases the Manager. It leaves the kernel state alone: a restart
// must not open a window of plaintext.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if m.genSock != nil {
		m.release(m.genSock.Close)
		m.genSock = nil
	}
	m.dropUpdateConn()
	m.closePending()
	return nil
}
