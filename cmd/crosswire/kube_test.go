package main

import (
	"context"
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
	if _, err := newKubeClient(path); err != nil {
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
// JSON (BenchmarkWatchDecode in test/scale). Its generated clients ask for
// protobuf for built-in types only while the config leaves ContentType
// unset: the agent's Node list and watch must keep doing so.
func TestKubeClientAsksForProtobufNodes(t *testing.T) {
	var (
		mu     sync.Mutex
		accept string
	)
	list := &corev1.NodeList{Items: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "node2"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.2.0/24"}}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accept = r.Header.Get("Accept")
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
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(strings.Replace(testKubeconfig, "https://192.0.2.1:6443", srv.URL, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := newKubeClient(path)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 || nodes.Items[0].Name != "node2" || nodes.Items[0].Spec.PodCIDR != "10.244.2.0/24" {
		t.Errorf("listed %+v", nodes.Items)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(accept, runtime.ContentTypeProtobuf) {
		t.Errorf("Node list asked for %q, want protobuf first", accept)
	}
}
