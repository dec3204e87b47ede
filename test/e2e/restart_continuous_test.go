package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crosswire/crosswire/test/netcluster"
)

// TestContinuousTrafficAcrossRestarts pings pod to pod across nodes every
// 20 ms, both ways, while node1's agent is stopped with SIGTERM, killed
// with SIGKILL, and replaced by a different build (an upgrade: the same
// source stamped with another version, as the image build stamps it), each
// time down for downtime before it starts again. The
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
	swapBin, swapVersion := buildNextVersion(t)

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
		// The agent says which build it is: the new one after the swap.
		wantVersion := `"version":"dev"`
		if kind == "binary swap" {
			wantVersion = `"version":"` + swapVersion + `"`
		}
		eventually(t, 10*time.Second, kind+": the agent logs its version", func() error {
			if log := e.agents[n1.Name].Log(); !strings.Contains(log, wantVersion) {
				return errString("no " + wantVersion + " in the agent log")
			}
			return nil
		})
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

// buildNextVersion builds crosswire again with another version stamp
// (-ldflags -X main.version, as the image build does): a really different
// binary, not a copy of agentBin.
func buildNextVersion(t *testing.T) (bin, version string) {
	t.Helper()
	version = fmt.Sprintf("e2e-next-%d", time.Now().UnixNano())
	bin = filepath.Join(t.TempDir(), "crosswire-next")
	out, err := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", bin,
		"github.com/crosswire/crosswire/cmd/crosswire").CombinedOutput()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", version, err, out)
	}
	old, err1 := os.ReadFile(agentBin)
	next, err2 := os.ReadFile(bin)
	if err1 != nil || err2 != nil || bytes.Equal(old, next) {
		t.Fatalf("the swapped-in binary is not a different build (%v, %v)", err1, err2)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.Contains(string(out), version) {
		t.Fatalf("%s version: %q, %v; want %s", bin, out, err, version)
	}
	return bin, version
}
