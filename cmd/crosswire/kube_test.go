package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

const testKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://192.0.2.1:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`

func TestKubeConfigFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(testKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := kubeConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "https://192.0.2.1:6443" || cfg.QPS != kubeQPS || cfg.Burst != kubeBurst || cfg.UserAgent != "crosswire-agent" {
		t.Errorf("config host %q qps %v burst %d agent %q", cfg.Host, cfg.QPS, cfg.Burst, cfg.UserAgent)
	}
	if _, err := newKubeClients(path); err != nil {
		t.Errorf("client: %v", err)
	}
	if _, err := kubeConfig(filepath.Join(t.TempDir(), "absent")); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("missing kubeconfig: %v", err)
	}
}

func TestKubeConfigInClusterOutsideAPod(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if _, err := kubeConfig(""); err == nil || !strings.Contains(err.Error(), "in-cluster") {
		t.Errorf("in-cluster config outside a pod: %v", err)
	}
}

// Without --nodes-file the agent needs the API server; a bad kubeconfig
// must stop it before it creates a key or touches the kernel.
func TestAgentKubeconfigErrorFailsEarly(t *testing.T) {
	dir := t.TempDir()
	cmd := newAgentCommand()
	cmd.SetArgs([]string{"--node-name", "n1", "--state-dir", dir, "--kubeconfig", filepath.Join(dir, "absent")})
	cmd.SetContext(context.Background())
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Fatalf("agent with a missing kubeconfig: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "private.key")); !os.IsNotExist(err) {
		t.Errorf("key file created before the config was checked: %v", err)
	}
}

// Every kubelet heartbeat in the cluster reaches the agent as a whole Node
// (10-20 KB); client-go decodes one from protobuf ~10x faster than from
// JSON, and the Node client's slim decode skips what crosswire never reads
// (BenchmarkWatchDecode in test/scale). Both clients must ask for
// protobuf, the Node client must hand the informer slim Nodes, and the two
// must share one connection to the API server.
func TestKubeClientsAskForProtobufNodes(t *testing.T) {
	var (
		mu      sync.Mutex
		accepts []string
		conns   int
	)
	node := corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node2", Labels: map[string]string{"topology.kubernetes.io/zone": "a"},
			Annotations: map[string]string{"crosswire.dev/endpoint": "192.0.2.2:51820", "node.alpha.kubernetes.io/ttl": "0"}},
		Spec:   corev1.NodeSpec{PodCIDR: "10.244.2.0/24", PodCIDRs: []string{"10.244.2.0/24"}},
		Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"registry.k8s.io/pause:3.10"}, SizeBytes: 1}}},
	}
	list := &corev1.NodeList{Items: []corev1.Node{node}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accepts = append(accepts, r.Header.Get("Accept"))
		mu.Unlock()
		mt := runtime.ContentTypeJSON
		if strings.HasPrefix(r.Header.Get("Accept"), runtime.ContentTypeProtobuf) {
			mt = runtime.ContentTypeProtobuf
		}
		info, _ := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), mt)
		b, err := runtime.Encode(scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion), list)
		if err != nil {
			t.Error(err)
			return
		}
		w.Header().Set("Content-Type", mt)
		_, _ = w.Write(b)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(strings.Replace(testKubeconfig, "https://192.0.2.1:6443", srv.URL, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	clients, err := newKubeClients(path)
	if err != nil {
		t.Fatal(err)
	}
	full, err := clients.all.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Items) != 1 || len(full.Items[0].Labels) != 1 || len(full.Items[0].Status.Images) != 1 {
		t.Errorf("full client listed %+v", full.Items)
	}
	slim, err := clients.nodes.List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(slim.Items) != 1 {
		t.Fatalf("node client listed %d Nodes", len(slim.Items))
	}
	got := slim.Items[0]
	if got.Name != "node2" || got.Spec.PodCIDR != "10.244.2.0/24" || got.Annotations["crosswire.dev/endpoint"] != "192.0.2.2:51820" {
		t.Errorf("node client lost what crosswire reads: %+v", got)
	}
	if len(got.Labels) != 0 || len(got.Status.Images) != 0 || len(got.Annotations) != 1 {
		t.Errorf("node client kept what crosswire never reads: labels %v, images %v, annotations %v", got.Labels, got.Status.Images, got.Annotations)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, a := range accepts {
		if !strings.HasPrefix(a, runtime.ContentTypeProtobuf) {
			t.Errorf("request %d asked for %q, want protobuf first", i, a)
		}
	}
	if conns != 1 {
		t.Errorf("%d connections to the API server, want 1 shared", conns)
	}
}
