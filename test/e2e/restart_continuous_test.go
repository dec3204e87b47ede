package e2e

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/test/netcluster"
)

// TestContinuousTrafficAcrossRestarts pings pod to pod across nodes every
// 20 ms, both ways, while node1's agent is stopped with SIGTERM, killed
// with SIGKILL, and replaced by a different copy of the binary (an
// upgrade), each time down for downtime before it starts again. The
// underlay is captured for the whole run: not one plaintext packet. The
// blackout of each kind (the longest stretch without replies) is logged,
// not asserted: benchmarks measure it.
func TestContinuousTrafficAcrossRestarts(t *testing.T) {
	const downtime = time.Second
	e := newEnv(t, netcluster.Options{Nodes: 2, PodsPerNode: 1})
	n1, n2 := e.c.Nodes[0], e.c.Nodes[1]
	a, b := n1.Pods[0], n2.Pods[0]
	keyFile := filepath.Join(n1.StateDir, "private.key")
	keyBefore, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	swapBin := filepath.Join(t.TempDir(), "crosswire-next")
	copyFile(t, agentBin, swapBin)

	cap := e.c.StartCapture(t)
	fwd := netcluster.StartPinger(t, "node1->node2", a.NS, b.IP)
	rev := netcluster.StartPinger(t, "node2->node1", b.NS, a.IP)
	eventually(t, 5*time.Second, "pings flow", func() error {
		if !fwd.RepliedSince(time.Now().Add(-time.Second)) || !rev.RepliedSince(time.Now().Add(-time.Second)) {
			return errString("no replies yet")
		}
		return nil
	})

	type window struct {
		kind                  string
		stopped, started, end time.Time
	}
	var windows []window
	for _, kind := range []string{"SIGTERM", "SIGKILL", "binary swap"} {
		time.Sleep(500 * time.Millisecond) // steady traffic between events
		w := window{kind: kind, stopped: time.Now()}
		switch kind {
		case "SIGKILL":
			e.stopAgent(n1, syscall.SIGKILL)
		default:
			e.stopAgent(n1, syscall.SIGTERM)
		}
		time.Sleep(downtime)
		if kind == "binary swap" {
			e.Bin = swapBin
			// Someone loosened the state directory meanwhile: the new
			// agent tightens it again.
			if err := os.Chmod(n1.StateDir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		w.started = time.Now()
		e.startAgent(n1)
		e.Bin = agentBin
		eventually(t, 20*time.Second, kind+": traffic resumes both ways", func() error {
			if !fwd.RepliedSince(w.started) || !rev.RepliedSince(w.started) {
				return errString("no reply since restart")
			}
			return nil
		})
		w.end = time.Now().Add(200 * time.Millisecond)
		windows = append(windows, w)
	}
	time.Sleep(500 * time.Millisecond)
	fwd.Stop()
	rev.Stop()
	counts, err := cap.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("underlay over the whole run: %s", counts)
	for _, p := range []*netcluster.Pinger{fwd, rev} {
		t.Logf("%s: %d replies to %d echo requests (every %v)", p.Name, len(p.Replies), p.Sent, netcluster.PingInterval)
	}
	for _, w := range windows {
		for _, p := range []*netcluster.Pinger{fwd, rev} {
			gap := netcluster.LongestGap(p.Replies, w.stopped, w.end)
			// The part of the gap after the new agent started.
			var afterStart time.Duration
			for _, r := range p.Replies {
				if r.After(w.started) {
					afterStart = r.Sub(w.started)
					break
				}
			}
			t.Logf("%-11s %s: blackout %v (agent down %v; first reply %v after the new agent started)",
				w.kind, p.Name, gap.Round(time.Millisecond), w.started.Sub(w.stopped).Round(time.Millisecond), afterStart.Round(time.Millisecond))
		}
	}
	if counts.Plaintext != 0 {
		t.Errorf("%d plaintext pod packets on the underlay across restarts: %v", counts.Plaintext, counts.PlaintextSamples)
	}
	if counts.WireGuard == 0 {
		t.Error("no WireGuard packets: the traffic did not go through the tunnel")
	}
	if pk := e.pubkey(n1); pk != e.keys[n1.Name] {
		t.Errorf("public key changed across restarts: %s -> %s", e.keys[n1.Name], pk)
	}
	if keyAfter, err := os.ReadFile(keyFile); err != nil || string(keyAfter) != string(keyBefore) {
		t.Errorf("key file changed across restarts (%v)", err)
	}
	// File and socket safety after all that.
	for path, want := range map[string]os.FileMode{
		n1.StateDir: os.ModeDir | 0o700,
		keyFile:     0o600,
		filepath.Join(n1.SocketDir, iface+".sock"): os.ModeSocket | 0o600,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, want)
		}
	}
	if !strings.Contains(e.agents[n1.Name].Log(), "tightened to 0700") {
		t.Error("the agent did not log tightening the state directory")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
