package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/crosswire/crosswire/build/ociimage"
	"github.com/crosswire/crosswire/test/kubecluster"
	"github.com/crosswire/crosswire/test/netcluster"
)

const (
	demoNodes = 3
	version   = "0.0.0-demo"
	release   = "crosswire"
	releaseNS = "crosswire"
)

func up(prefix, dir string) error {
	start := time.Now()
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%s exists: a demo cluster is running (or an earlier one failed); run `make demo-down` first", dir)
	}
	if left, _ := filepath.Glob("/var/run/netns/" + prefix + "-*"); len(left) > 0 {
		return fmt.Errorf("namespaces %s-* exist (an earlier demo?); run `make demo-down` first", prefix)
	}
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "charts", "crosswire", "Chart.yaml")); err != nil {
		return fmt.Errorf("run from the repository's root (make demo-cluster): %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fmt.Printf("crosswire demo cluster: a real Kubernetes cluster of %d nodes on this machine, crosswire installed with Helm\n", demoNodes)

	var img, sandbox v1.ImageIndex
	if err := step("the crosswire image (go-containerregistry, FROM scratch)", func() (string, error) {
		bin, err := os.MkdirTemp("", "crosswire-demo-image-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(bin)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		img, err = ociimage.Build(ctx, ociimage.Options{
			Version: version, Revision: "demo",
			Platforms: []v1.Platform{{OS: "linux", Architecture: runtime.GOARCH}},
			Binaries:  ociimage.GoBuild{ModuleDir: repo, OutDir: bin},
		})
		if err != nil {
			return "", err
		}
		sandbox, err = kubecluster.PauseImage(img)
		d, _ := img.Digest()
		return d.String(), err
	}); err != nil {
		return err
	}

	var c *kubecluster.Cluster
	if err := step("control plane, registry and "+fmt.Sprint(demoNodes)+" nodes (containerd, kubelet, kube-proxy in nftables mode)", func() (string, error) {
		c, err = kubecluster.Launch(kubecluster.Options{Nodes: demoNodes, Prefix: prefix, Detached: true, Sandbox: sandbox})
		if err != nil {
			return "", err
		}
		st := &state{Prefix: prefix, Root: c.Net.Root, Underlay: c.Net.Underlay, Kubeconfig: c.Kubeconfig}
		if err := st.save(dir); err != nil {
			return "", err
		}
		return "every node Ready", writeKubectl(dir, c)
	}); err != nil {
		return failed(err)
	}
	image := c.RegistryHost() + "/crosswire/crosswire"
	var pinned string
	if err := step("push the image to the cluster's registry", func() (string, error) {
		pinned, err = c.Push(image+":"+version, img)
		return pinned, err
	}); err != nil {
		return failed(err)
	}
	var w *kubecluster.Workloads
	if err := step("workloads: 2 pods per node and a ClusterIP Service", func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		w, err = c.StartWorkloads(ctx, image+":"+version)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d pods, Service %s", len(w.Pods), w.ServiceVIP), nil
	}); err != nil {
		return failed(err)
	}
	defer w.Close()

	before, err := traffic(c, w)
	if err != nil {
		return failed(err)
	}
	if err := step("helm install crosswire (image pinned by digest)", func() (string, error) {
		if _, err := c.Helm("install", release, filepath.Join(repo, "charts", "crosswire"), "--namespace", releaseNS, "--create-namespace",
			"--set", "image.repository="+image, "--set", "image.digest="+pinned[strings.Index(pinned, "@")+1:], "--wait", "--timeout", "3m"); err != nil {
			return "", err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		return "DaemonSet ready on every node", c.WaitDaemonSetReady(ctx, releaseNS, release)
	}); err != nil {
		return failed(err)
	}
	after, err := traffic(c, w)
	if err != nil {
		return failed(err)
	}

	fmt.Println("\n--- kubectl get pods -A -o wide")
	out, _ := c.Kubectl("get", "pods", "-A", "-o", "wide")
	fmt.Print(indent(out))
	fmt.Printf("\n--- pod to pod across nodes and through the Service, captured on the underlay\n")
	fmt.Printf("  before helm install: %v\n", before)
	fmt.Printf("  after helm install:  %v\n", after)
	n1 := c.Nodes[0]
	out, _ = c.Kubectl("-n", releaseNS, "exec", "ds/"+release, "-c", "agent", "--", "/usr/local/bin/crosswire", "status")
	fmt.Printf("\n--- kubectl -n %s exec ds/%s -- crosswire status\n%s", releaseNS, release, indent(out))
	out, _ = n1.Exec("nft", "list", "table", "inet", "crosswire")
	fmt.Printf("\n--- %s: nft list table inet crosswire\n%s", n1.Name, indent(out))

	pass := before.Plaintext > 0 && after.Plaintext == 0 && after.WireGuard > 0
	if pass {
		fmt.Printf("\nVERDICT: PASS (before: %d plaintext pod packets on the underlay; after: 0 plaintext, %d WireGuard)\n", before.Plaintext, after.WireGuard)
	} else {
		fmt.Printf("\nVERDICT: FAIL (before: %v; after: %v)\n", before, after)
	}
	fmt.Printf("ready in %.0f s\n", time.Since(start).Seconds())
	fmt.Printf(`
The cluster keeps running. Things to try (as root):
  kubectl                       %[1]s get nodes,pods -A -o wide
  the agent on a node           %[1]s -n %[2]s exec ds/%[3]s -c agent -- crosswire status
  a node's nftables and routes  ip netns exec %[4]s nft list table inet crosswire; ip netns exec %[4]s ip route show table 202
  a pod's network               ip netns exec %[5]s ping %[6]s
  the wire between nodes        ip netns exec %[7]s tcpdump -ni br0   (pod to pod: only UDP 51820)
  upgrade, uninstall            docs/helm.md (helm: ip netns exec %[7]s helm --kubeconfig %[8]s ...)
Remove everything: make demo-down
`, filepath.Join(dir, "kubectl"), releaseNS, release, n1.NS, w.Pods[0].NS, w.Pods[len(w.Pods)-1].IP, c.Net.Underlay, c.Kubeconfig)
	if !pass {
		return fmt.Errorf("traffic not as designed")
	}
	return nil
}

// traffic runs the workloads' flows under an underlay capture, until
// every flow answers.
func traffic(c *kubecluster.Cluster, w *kubecluster.Workloads) (netcluster.Counts, error) {
	cp, err := c.Net.OpenCapture()
	if err != nil {
		return netcluster.Counts{}, err
	}
	// Right after install a peer may still retry its first handshake.
	if _, err := w.ExerciseUntil(15 * time.Second); err != nil {
		_, _ = cp.Stop()
		return netcluster.Counts{}, err
	}
	return cp.Stop()
}

// writeKubectl writes a kubectl wrapper that runs the cached kubectl in
// the underlay namespace with the admin's kubeconfig.
func writeKubectl(dir string, c *kubecluster.Cluster) error {
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s --kubeconfig %s \"$@\"\n", c.Net.Underlay, c.KubectlPath(), c.Kubeconfig)
	return os.WriteFile(filepath.Join(dir, "kubectl"), []byte(script), 0o755)
}

func failed(err error) error {
	return fmt.Errorf("%w\n`make demo-down` removes everything", err)
}

// step runs one step of up and prints it with its result and duration.
func step(what string, fn func() (string, error)) error {
	fmt.Printf("  %-80s ", what+" ...")
	start := time.Now()
	detail, err := fn()
	if err != nil {
		fmt.Println("FAILED")
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Printf("ok (%.1f s) %s\n", time.Since(start).Seconds(), detail)
	return nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if l != "" {
			b.WriteString("  ")
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}
