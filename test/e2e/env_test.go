package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/cwcluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

const (
	iface      = cwcluster.Iface
	listenPort = cwcluster.ListenPort
	resync     = time.Second
)

// env is a namespace cluster with one crosswire agent per node; its
// methods fail the test instead of returning errors.
type env struct {
	t testing.TB
	*cwcluster.Cluster
	c         *netcluster.Cluster
	keys      map[string]string
	agents    map[string]*netcluster.Process
	nodesFile string
	api       *apiserver.Server // nil in file mode
}

// newEnv builds the cluster, starts an agent on every node (with extra
// flags) and waits until every pod reaches every other node's pods.
func newEnv(t testing.TB, o netcluster.Options, extra ...string) *env {
	t.Helper()
	e := startEnv(t, o, extra...)
	if err := e.WaitConverged(); err != nil {
		t.Fatal(err)
	}
	return e
}

// startEnv is newEnv without the wait (and so without the traffic the wait
// sends), for tests that must see the cluster before any pod talks.
func startEnv(t testing.TB, o netcluster.Options, extra ...string) *env {
	t.Helper()
	c := netcluster.New(t, o)
	cw, err := cwcluster.Start(c, agentBin, resync, extra...)
	if cw != nil {
		t.Cleanup(func() {
			if t.Failed() {
				for name, p := range cw.Agents {
					t.Logf("agent log of %s:\n%s", name, tail(p.Log(), 40))
				}
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, Cluster: cw, c: c, keys: cw.Keys, agents: cw.Agents, nodesFile: cw.NodesFile}
}

func (e *env) pubkey(n *netcluster.Node) string {
	e.t.Helper()
	k, err := e.PublicKey(n)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

func (e *env) writeNodes(nodes []*netcluster.Node) {
	e.t.Helper()
	if err := e.WriteNodes(nodes); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) startAgent(n *netcluster.Node) {
	e.t.Helper()
	if _, err := e.StartAgent(n); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) stopAgent(n *netcluster.Node, sig syscall.Signal) {
	e.t.Helper()
	if err := e.StopAgent(n, sig); err != nil {
		e.t.Fatalf("%v\n%s", err, tail(e.agents[n.Name].Log(), 30))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := cwcluster.Eventually(timeout, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
