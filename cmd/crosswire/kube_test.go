package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
