package apiserver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/crosswire/crosswire/internal/testenv"
)

// TestLaunchDetachedAttachStopDir runs the demo's life cycle: launch
// detached into a directory, attach from "another process" (a fresh handle
// from the directory alone), use it, then stop by pid files.
func TestLaunchDetachedAttachStopDir(t *testing.T) {
	if _, _, err := binaries(DefaultToolsDir()); err != nil {
		testenv.Missing(t, "%v", err)
	}
	dir := filepath.Join(t.TempDir(), "api")
	s, err := Launch(LaunchOptions{Dir: dir, Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	pids := map[string]int{}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".pid"))
		if err != nil {
			t.Fatal(err)
		}
		pids[name], _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	t.Cleanup(func() {
		if _, err := StopDir(dir); err != nil {
			t.Error(err)
		}
	})
	if _, err := Launch(LaunchOptions{Dir: dir}); err == nil {
		t.Fatal("second Launch into the same directory succeeded")
	}

	a, err := Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.URL != s.URL {
		t.Fatalf("attached URL %s, launched %s", a.URL, s.URL)
	}
	admin, err := kubernetes.NewForConfig(a.Admin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if _, err := admin.CoreV1().Nodes().Create(ctx, newNode("node1", "10.244.1.0/24"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node through the attached admin: %v", err)
	}
	kubelet, err := a.NewUser("system:node:node1", "system:nodes")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node1.kubeconfig")
	if err := a.WriteKubeconfig(kubelet, path); err != nil {
		t.Fatal(err)
	}
	if err := annotate(ctx, clientFor(t, kubelet), "node1", "crosswire.io/own", "yes"); err != nil {
		t.Fatalf("minted node identity: %v", err)
	}

	stopped, err := StopDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(stopped) != 2 {
		t.Fatalf("StopDir stopped %v, want kube-apiserver and etcd", stopped)
	}
	for name, pid := range pids {
		if !processDead(pid) {
			t.Errorf("%s (pid %d) still running after StopDir", name, pid)
		}
	}
	if again, err := StopDir(dir); err != nil || len(again) != 0 {
		t.Fatalf("second StopDir = %v, %v; want nothing, nil", again, err)
	}
	s.Stop() // the launching process's handle: nothing left to do
}
