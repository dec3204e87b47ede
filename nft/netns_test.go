package nft

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/crosswire/crosswire/internal/testenv"
)

// testNS is a throwaway named network namespace (named, so that `ip netns
// exec` can inspect it). Only addresses inside such namespaces are used.
type testNS struct {
	name   string
	handle netns.NsHandle
}

// newNS creates a namespace named cwnft-<random> and removes it when the
// test ends, whether it passed or not.
func newNS(t *testing.T) *testNS {
	t.Helper()
	testenv.RequireRoot(t, "creates network namespaces")
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "cwnft-" + hex.EncodeToString(b)

	// NewNamed switches the calling thread into the new namespace; pin the
	// goroutine to its thread and switch back before anything else runs here.
	runtime.LockOSThread()
	origin, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get current netns: %v", err)
	}
	defer origin.Close()
	h, err := netns.NewNamed(name)
	if serr := netns.Set(origin); serr != nil {
		// Leave the thread locked: the runtime discards it when the
		// goroutine ends instead of reusing it in the wrong namespace.
		t.Fatalf("restore netns: %v", serr)
	}
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	ns := &testNS{name: name, handle: h}
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	return ns
}

func (ns *testNS) fd() int { return int(ns.handle) }

// run executes a command inside the namespace and fails the test on error.
func (ns *testNS) run(t *testing.T, cmd string, args ...string) string {
	t.Helper()
	out, err := ns.try(cmd, args...)
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", cmd, strings.Join(args, " "), ns.name, err, out)
	}
	return out
}

func (ns *testNS) try(cmd string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.name, cmd}, args...)...).CombinedOutput()
	return string(out), err
}

func (ns *testNS) nft(t *testing.T, args ...string) string {
	t.Helper()
	return ns.run(t, "nft", args...)
}
