package soak

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
	"github.com/crosswire/crosswire/wgtun"
)

// Result is what one fault did and how long it took to heal.
type Result struct {
	Fault Fault
	// Injected is when the fault was made, Lifted when it was undone (or
	// Injected, for faults the agent must heal by itself), Healed when
	// traffic and state were whole again.
	Injected, Lifted, Healed time.Time
	Heal                     time.Duration
	Over                     bool // heal took longer than the bound (or never came)
	Err                      error
	Blackout                 time.Duration // longest gap of an affected ping flow; -1: none to measure
}

// healGrace is how long past its bound a heal is still awaited, so a slow
// heal is measured rather than only flagged.
const healGrace = 15 * time.Second

// Execute injects f, lifts it after its hold and waits for the heal.
func (r *Run) Execute(ctx context.Context, f Fault) Result {
	res := Result{Fault: f, Injected: time.Now()}
	state, err := r.inject(ctx, f, &res)
	if err != nil {
		res.Err = err
		res.Over = true
		res.Healed = time.Now()
		res.Blackout = -1
		r.rescue(ctx, f)
		return res
	}
	if res.Lifted.IsZero() {
		res.Lifted = res.Injected
	}
	res.Heal, res.Err = r.waitHeal(f, res.Lifted, state)
	res.Healed = res.Lifted.Add(res.Heal)
	res.Over = res.Err != nil || res.Heal > f.Kind.Bound
	res.Blackout = r.blackout(res)
	if res.Err != nil {
		r.rescue(ctx, f)
	}
	if f.Kind.Target == targetSpare && r.isJoined() {
		time.Sleep(f.Hold)
		if err := r.leave(ctx); err != nil {
			res.Err = err
		}
	}
	return res
}

// inject makes the fault and, for faults that are undone, waits the hold
// and undoes it, setting res.Lifted. It returns the state check the heal
// waits for besides traffic (nil: traffic only).
func (r *Run) inject(ctx context.Context, f Fault, res *Result) (func() error, error) {
	n := r.node(f.Node)
	hold := func() { time.Sleep(f.Hold) }
	lift := func() { res.Lifted = time.Now() }
	switch f.Kind.Name {
	case "agent-sigkill", "agent-sigterm", "agent-upgrade", "rekey":
		sig := syscall.SIGTERM
		if f.Kind.Name == "agent-sigkill" {
			sig = syscall.SIGKILL
		}
		old, _ := r.publicKey(ctx, n)
		if err := r.stopAgent(n, sig); err != nil {
			return nil, err
		}
		switch f.Kind.Name {
		case "agent-upgrade":
			r.mu.Lock()
			r.binIdx[n.Name] ^= 1
			r.mu.Unlock()
		case "rekey":
			if err := removeKey(n); err != nil {
				return nil, err
			}
		}
		hold()
		lift()
		if err := r.startAgent(n); err != nil {
			return nil, err
		}
		if f.Kind.Name == "rekey" {
			return func() error {
				k, err := r.publicKey(ctx, n)
				if err != nil || k == "" || k == old {
					return fmt.Errorf("new key of %s not published (%q, %v)", n.Name, k, err)
				}
				return nil
			}, nil
		}
		return nil, nil
	case "annotation-tamper":
		own, err := r.publicKey(ctx, n)
		if err != nil {
			return nil, err
		}
		bogus, err := wgtun.GeneratePrivateKey()
		if err != nil {
			return nil, err
		}
		if err := r.patchAnnotations(ctx, n.Name, map[string]string{keyAnnotation: bogus.PublicKey().String()}); err != nil {
			return nil, err
		}
		return func() error {
			k, err := r.publicKey(ctx, n)
			if err != nil || k != own {
				return fmt.Errorf("%s's key not restored (%q, %v)", n.Name, k, err)
			}
			return nil
		}, nil
	case "node-delete-readd":
		if err := r.CW.DeleteNode(ctx, n); err != nil {
			return nil, err
		}
		hold()
		lift()
		if err := r.register(ctx, n); err != nil {
			return nil, err
		}
		// Traffic stops while the Node is gone (its own agent keeps its
		// pod CIDRs local, the others fence them: strict mode drops it)
		// and flows again once it is back with its key: repaired is when
		// the key is republished and every agent marks it, then the
		// flows answer.
		return func() error {
			if k, err := r.publicKey(ctx, n); err != nil || k == "" {
				return fmt.Errorf("%s's key not republished (%v)", n.Name, err)
			}
			return r.marked(f, n)
		}, nil
	case "node-join":
		return nil, r.join(ctx)
	case "apiserver-stop":
		r.API.StopAPIServer(r.T)
		hold()
		lift()
		r.API.StartAPIServer(r.T)
		return r.canaryChange(ctx)
	case "apiserver-pause":
		r.API.PauseAPIServer(r.T)
		hold()
		lift()
		r.API.ResumeAPIServer(r.T)
		return r.canaryChange(ctx)
	case "apiserver-restart":
		r.API.RestartAPIServer(r.T)
		lift()
		return r.canaryChange(ctx)
	case "etcd-restart":
		if err := r.API.RestartEtcd(); err != nil {
			return nil, err
		}
		lift()
		return r.canaryChange(ctx)
	case "nft-flush":
		if _, err := netcluster.Exec(n.NS, "nft", "flush", "table", "inet", cwcluster.NftTable); err != nil {
			return nil, err
		}
		return func() error { return contains(n.NS, "@remote4", "nft", "list", "table", "inet", cwcluster.NftTable) }, nil
	case "ip-rule-delete":
		for _, fam := range []string{"-4", "-6"} {
			if _, err := netcluster.Exec(n.NS, "ip", fam, "rule", "del", "lookup", strconv.Itoa(cwcluster.Table)); err != nil {
				return nil, err
			}
		}
		return func() error {
			for _, fam := range []string{"-4", "-6"} {
				if err := contains(n.NS, "lookup "+strconv.Itoa(cwcluster.Table), "ip", fam, "rule", "show"); err != nil {
					return err
				}
			}
			return nil
		}, nil
	case "routes-delete":
		for _, fam := range []string{"-4", "-6"} {
			if _, err := netcluster.Exec(n.NS, "ip", fam, "route", "flush", "table", strconv.Itoa(cwcluster.Table)); err != nil {
				return nil, err
			}
		}
		return func() error {
			for _, fam := range []string{"-4", "-6"} {
				if err := contains(n.NS, "dev "+cwcluster.Iface, "ip", fam, "route", "show", "table", strconv.Itoa(cwcluster.Table)); err != nil {
					return err
				}
			}
			return nil
		}, nil
	case "wg-peer-remove":
		peer := r.node(f.Peer)
		// From the peer's key file, not its Node: this fault does not
		// wait for the API server, which may be down meanwhile.
		key, err := r.CW.PublicKey(peer)
		if err != nil {
			return nil, err
		}
		if _, err := r.CW.WG(n, "set", cwcluster.Iface, "peer", key, "remove"); err != nil {
			return nil, err
		}
		return func() error {
			// `wg show <dev> peers` lists keys only: a stray line from the
			// mount namespace wrapper cannot break its parsing.
			out, err := r.CW.WG(n, "show", cwcluster.Iface, "peers")
			if err != nil {
				return err
			}
			if !strings.Contains(out, key) {
				return fmt.Errorf("%s has no peer %s", n.Name, peer.Name)
			}
			return nil
		}, nil
	case "tunnel-link-delete":
		if _, err := netcluster.Exec(n.NS, "ip", "link", "del", cwcluster.Iface); err != nil {
			return nil, err
		}
		return func() error {
			return contains(n.NS, "dev "+cwcluster.Iface, "ip", "-4", "route", "show", "table", strconv.Itoa(cwcluster.Table))
		}, nil
	case "underlay-flap":
		port := fmt.Sprintf("n%d", n.Index)
		if _, err := netcluster.Exec(r.C.Underlay, "ip", "link", "set", port, "down"); err != nil {
			return nil, err
		}
		hold()
		lift()
		if _, err := netcluster.Exec(r.C.Underlay, "ip", "link", "set", port, "up"); err != nil {
			return nil, err
		}
		return nil, nil
	case "underlay-loss30":
		// sch_netem is not available on every kernel (not on the soak's
		// machine); nftables' random numbers drop the same share, on the
		// bridge, both ways.
		table := fmt.Sprintf("soakloss%d", n.Index)
		port := fmt.Sprintf("n%d", n.Index)
		rules := fmt.Sprintf(`table bridge %s {
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "%s" numgen random mod 100 < 30 drop
		oifname "%s" numgen random mod 100 < 30 drop
	}
}
`, table, port, port)
		if _, err := netcluster.ExecInput(r.C.Underlay, []byte(rules), "nft", "-f", "-"); err != nil {
			return nil, err
		}
		hold()
		lift()
		if _, err := netcluster.Exec(r.C.Underlay, "nft", "delete", "table", "bridge", table); err != nil {
			return nil, err
		}
		return nil, nil
	case "underlay-mtu":
		return r.mtuFault(n, f, res)
	}
	return nil, fmt.Errorf("unknown fault kind %q", f.Kind.Name)
}

// mtuFault shrinks node n's underlay MTU by 100, waits until the agent's
// tunnel follows, holds, restores it and waits again; Lifted is the
// restore, and the heal the slower of the two adaptations.
func (r *Run) mtuFault(n *netcluster.Node, f Fault, res *Result) (func() error, error) {
	before, err := linkMTU(n.NS, cwcluster.Iface)
	if err != nil {
		return nil, err
	}
	under, err := linkMTU(n.NS, netcluster.UnderlayDev)
	if err != nil {
		return nil, err
	}
	wantTunnel := func(m int) func() error {
		return func() error {
			got, err := linkMTU(n.NS, cwcluster.Iface)
			if err != nil {
				return err
			}
			if got != m {
				return fmt.Errorf("%s tunnel MTU %d, want %d", n.Name, got, m)
			}
			return nil
		}
	}
	setMTU := func(m int) error {
		_, err := netcluster.Exec(n.NS, "ip", "link", "set", netcluster.UnderlayDev, "mtu", strconv.Itoa(m))
		return err
	}
	if err := setMTU(under - 100); err != nil {
		return nil, err
	}
	shrink := time.Now()
	if err := cwcluster.Eventually(f.Kind.Bound+healGrace, wantTunnel(before-100)); err != nil {
		_ = setMTU(under)
		return nil, fmt.Errorf("tunnel MTU after the underlay shrank: %w", err)
	}
	first := time.Since(shrink)
	time.Sleep(f.Hold)
	if err := setMTU(under); err != nil {
		return nil, err
	}
	res.Lifted = time.Now()
	if first > f.Kind.Bound {
		// The shrink's adaptation was the slow one: report it as the heal
		// by moving the lift back.
		res.Lifted = res.Lifted.Add(-first)
	}
	return wantTunnel(before), nil
}

func linkMTU(ns, dev string) (int, error) {
	out, err := netcluster.Exec(ns, "cat", "/sys/class/net/"+dev+"/mtu")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

// waitHeal waits until state (if any) holds, and then until every ping
// flow the fault touches answered after that (traffic that flowed before
// the repair may have flowed in clear), and returns how long from from
// that took. Flows that also touch a node another running fault holds
// are that fault's to judge and are skipped.
func (r *Run) waitHeal(f Fault, from time.Time, state func() error) (time.Duration, error) {
	deadline := from.Add(f.Kind.Bound + healGrace)
	repaired := time.Time{}
	for {
		var err error
		if repaired.IsZero() && state != nil {
			if err = state(); err == nil {
				repaired = time.Now()
			}
		} else if repaired.IsZero() {
			repaired = from
		}
		if !repaired.IsZero() {
			if err = r.answered(f, repaired); err == nil {
				return time.Since(from), nil
			}
		}
		if time.Now().After(deadline) {
			return time.Since(from), fmt.Errorf("%s not healed within %v: %w", f.Kind.Name, f.Kind.Bound+healGrace, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// answered reports the fault's ping flows that have not answered since t.
func (r *Run) answered(f Fault, t time.Time) error {
	busy := r.busyNodes(f.Seq)
	var errs []error
	for _, fl := range r.affected(f) {
		if busy[fl.Src] || busy[fl.Dst] {
			continue
		}
		if !fl.AnsweredSince(t) {
			errs = append(errs, fmt.Errorf("%s silent", fl.Name))
		}
	}
	return errors.Join(errs...)
}

// affected lists the ping flows a fault touches.
func (r *Run) affected(f Fault) []*Flow {
	var out []*Flow
	for _, fl := range r.allFlows() {
		if fl.Kind != "ping4" && fl.Kind != "ping6" {
			continue
		}
		switch {
		case f.Peer != 0:
			if fl.Touches(f.Node) && fl.Touches(f.Peer) {
				out = append(out, fl)
			}
		case f.Node != 0:
			if fl.Touches(f.Node) {
				out = append(out, fl)
			}
		}
	}
	return out
}

// busyNodes returns the nodes held by running faults other than seq.
func (r *Run) busyNodes(seq int) map[int]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	busy := map[int]bool{}
	for s, g := range r.running {
		if s == seq {
			continue
		}
		for _, i := range g.f.Nodes() {
			busy[i] = true
		}
	}
	return busy
}

func (r *Run) allFlows() []*Flow {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(append([]*Flow(nil), r.flows...), r.spareRun...)
}

// rescue restarts the agents of a fault that did not heal (as an operator
// would), so the rest of the run measures the other faults instead of
// this one's aftermath. The fault stays failed.
func (r *Run) rescue(ctx context.Context, f Fault) {
	for _, i := range f.Nodes() {
		n := r.node(i)
		if n == nil || (n == r.spare && !r.isJoined()) {
			continue
		}
		readyz := "ready"
		if err := ready(ctx, n); err != nil {
			readyz = err.Error()
		}
		r.Log("fault #%d %s did not heal (agent /readyz: %s): restarting the agent on %s to go on", f.Seq, f.Kind.Name, readyz, n.Name)
		if p := r.agent(n); p != nil && !p.Exited() {
			if err := r.stopAgent(n, syscall.SIGTERM); err != nil {
				r.Log("rescue %s: %v", n.Name, err)
			}
		}
		if err := r.startAgent(n); err != nil {
			r.Log("rescue %s: %v", n.Name, err)
		}
	}
	since := time.Now()
	_ = cwcluster.Eventually(30*time.Second, func() error { return r.answered(f, since) })
}

// marked checks that n's own agent has its pod CIDRs in its local sets
// and every other base node's agent in its remote sets, both families;
// nodes another running fault holds are that fault's (an agent without
// its device cannot apply anything).
func (r *Run) marked(f Fault, n *netcluster.Node) error {
	busy := r.busyNodes(f.Seq)
	for _, m := range r.baseNodes() {
		if busy[m.Index] && m != n {
			continue
		}
		for _, fam := range []struct {
			local, remote string
			cidr          netip.Prefix
		}{{"local4", "remote4", n.PodCIDR}, {"local6", "remote6", n.PodCIDR6}} {
			set := fam.remote
			if m == n {
				set = fam.local
			}
			if err := contains(m.NS, fam.cidr.String(), "nft", "list", "set", "inet", cwcluster.NftTable, set); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
		}
	}
	return nil
}
