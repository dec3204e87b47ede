package soak

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

// echoPort is where every pod2 serves the TCP streams (both families).
const echoPort = 7000

// Run is one soak: the cluster, its API server, the flows and the faults'
// bookkeeping. Agent starts and stops go through its lock: cwcluster's
// maps and binary path are not safe for concurrent faults.
type Run struct {
	C    *netcluster.Cluster
	CW   *cwcluster.Cluster
	API  *apiserver.Server
	Bins [2]string // the two builds an upgrade alternates between
	Log  func(format string, args ...any)
	// T is the soak's test, for the API server's stop and start helpers.
	T testing.TB

	mu       sync.Mutex
	binIdx   map[string]int  // node -> index into Bins its agent runs
	down     map[string]bool // agents a fault stopped on purpose
	exits    map[string]int  // agents that exited while nobody stopped them
	spare    *netcluster.Node
	joined   bool
	flows    []*Flow
	canary   int // toggles the canary Node's CIDR
	running  map[int]claim
	history  []claim // faults that ended, for blackout exclusions
	spareRun []*Flow
	retired  []*Flow // the spare's flows of earlier joins
}

// claim is a fault holding its nodes (and maybe the API server) from
// since until until (zero while it runs).
type claim struct {
	f            Fault
	since, until time.Time
}

// node returns base node i (1-based) or the spare.
func (r *Run) node(i int) *netcluster.Node {
	if i == 0 {
		return nil
	}
	if i == len(r.baseNodes())+1 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.spare
	}
	return r.C.Nodes[i-1]
}

// baseNodes returns the four nodes the run began with, as a copy: an
// append to a slice of C.Nodes would write into the array AddNodes grows.
func (r *Run) baseNodes() []*netcluster.Node { return slices.Clone(r.C.Nodes[:4]) }

// startAgent starts n's agent with the build it last ran.
func (r *Run) startAgent(n *netcluster.Node) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.CW.Bin = r.Bins[r.binIdx[n.Name]]
	_, err := r.CW.StartAgent(n)
	r.CW.Bin = r.Bins[0]
	if err == nil {
		r.down[n.Name] = false
	}
	return err
}

// stopAgent signals n's agent and waits for it to exit.
func (r *Run) stopAgent(n *netcluster.Node, sig syscall.Signal) error {
	r.mu.Lock()
	r.down[n.Name] = true
	p := r.CW.Agents[n.Name]
	r.mu.Unlock()
	if p == nil {
		return fmt.Errorf("no agent on %s", n.Name)
	}
	if err := p.Signal(sig); err != nil {
		return err
	}
	if err := p.Wait(15 * time.Second); err != nil && !p.Exited() {
		return err
	}
	return nil
}

// agent returns n's agent process.
func (r *Run) agent(n *netcluster.Node) *netcluster.Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.CW.Agents[n.Name]
}

// supervise restarts agents that exit while no fault stopped them, as a
// DaemonSet's kubelet would (after a second), and counts each exit.
func (r *Run) supervise(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		r.mu.Lock()
		spare := r.spare
		r.mu.Unlock()
		for _, n := range append(r.baseNodes(), spare) {
			if n == nil {
				continue
			}
			r.mu.Lock()
			p, down := r.CW.Agents[n.Name], r.down[n.Name]
			r.mu.Unlock()
			if p == nil || down || !p.Exited() {
				continue
			}
			r.mu.Lock()
			r.exits[n.Name]++
			r.mu.Unlock()
			r.Log("agent on %s exited unexpectedly (%v); restarting it in 1 s; log tail:\n%s", n.Name, p.Wait(time.Second), tail(p.Log(), 15))
			time.Sleep(time.Second)
			if err := r.startAgent(n); err != nil {
				r.Log("restart agent on %s: %v", n.Name, err)
			}
		}
	}
}

// publicKey reads node n's published key from the API server.
func (r *Run) publicKey(ctx context.Context, n *netcluster.Node) (string, error) {
	node, err := r.CW.Kube.Admin.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return node.Annotations[controller.AnnotationPublicKey], nil
}

// patchAnnotations merges annotations into a Node.
func (r *Run) patchAnnotations(ctx context.Context, name string, ann map[string]string) error {
	var b strings.Builder
	b.WriteString(`{"metadata":{"annotations":{`)
	first := true
	for k, v := range ann {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:%q", k, v)
	}
	b.WriteString(`}}}`)
	_, err := r.CW.Kube.Admin.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(b.String()), metav1.PatchOptions{})
	return err
}

// contains runs a command in ns and fails unless its output has want.
func contains(ns, want string, argv ...string) error {
	out, err := netcluster.Exec(ns, argv...)
	if err != nil {
		return err
	}
	if !strings.Contains(out, want) {
		return fmt.Errorf("%q not in `%s`", want, strings.Join(argv, " "))
	}
	return nil
}

// echoAddr is where pod2 of n serves TCP streams in family fam (4 or 6).
func echoAddr(n *netcluster.Node, fam int) netip.AddrPort {
	ip := n.Pods[1].IP
	if fam == 6 {
		ip = n.Pods[1].IP6
	}
	return netip.AddrPortFrom(ip, echoPort)
}

// keyFile is n's agent's private key.
func keyFile(n *netcluster.Node) string { return filepath.Join(n.StateDir, "private.key") }

func removeKey(n *netcluster.Node) error {
	if err := os.Remove(keyFile(n)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove key of %s: %w", n.Name, err)
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
