package chart

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/test/apiserver"
)

// TestServerDryRun applies the rendered manifests with
// `kubectl apply --dry-run=server --validate=strict` to a real
// kube-apiserver (test/apiserver's version): the API server's own defaulting,
// validation and admission accept them, for default values, non-default
// values and cleanup mode.
func TestServerDryRun(t *testing.T) {
	helmPath(t) // fail early with the build command
	srv := apiserver.Start(t, apiserver.Options{})
	kubeconfig := filepath.Join(t.TempDir(), "admin.kubeconfig")
	srv.Kubeconfig(t, srv.Admin, kubeconfig)
	kubectl := filepath.Join(apiserver.DefaultToolsDir(), "kubectl")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// The namespace as docs/helm.md asks for it: Pod Security "privileged".
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}}}
	if _, err := srv.Client(t).CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apply := func(t *testing.T, manifests string) (stdout, stderr string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", kubeconfig,
			"apply", "--dry-run=server", "--validate=strict", "-f", "-")
		cmd.Stdin = strings.NewReader(manifests)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("kubectl apply --dry-run=server: %v\n%s%s", err, out.String(), errOut.String())
		}
		return out.String(), errOut.String()
	}

	for name, vals := range map[string][]string{
		"defaults":       nil,
		"custom":         {"-f", customValues(t)},
		"cleanup":        {"--set", "cleanup.enabled=true"},
		"custom cleanup": {"-f", customValues(t), "--set", "cleanup.enabled=true"},
	} {
		t.Run(name, func(t *testing.T) {
			m := render(t, vals...)
			stdout, stderr := apply(t, m.raw)
			if stderr != "" {
				t.Errorf("kubectl warnings:\n%s", stderr)
			}
			objs := []string{
				"serviceaccount/" + m.ServiceAccount.Name,
				"clusterrole.rbac.authorization.k8s.io/" + m.ClusterRole.Name,
				"clusterrolebinding.rbac.authorization.k8s.io/" + m.ClusterRoleBinding.Name,
				"role.rbac.authorization.k8s.io/" + m.Role.Name,
				"rolebinding.rbac.authorization.k8s.io/" + m.RoleBinding.Name,
				"daemonset.apps/" + m.DaemonSet.Name,
			}
			if m.Policy != nil {
				objs = append(objs,
					"validatingadmissionpolicy.admissionregistration.k8s.io/"+m.Policy.Name,
					"validatingadmissionpolicybinding.admissionregistration.k8s.io/"+m.PolicyBinding.Name)
			}
			for _, obj := range objs {
				if !strings.Contains(stdout, obj+" created (server dry run)") {
					t.Errorf("kubectl output lacks %q:\n%s", obj+" created (server dry run)", stdout)
				}
			}
		})
	}

	// helm itself against the API server: `helm install --dry-run=server`
	// renders NOTES.txt (helm template does not) with the commands the
	// operator is told to run.
	t.Run("notes", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{nil, []string{
				"kubectl -n " + testNamespace + " get daemonset " + fullName,
				"exec POD -c agent -- crosswire status --status-socket=/var/run/crosswire/status.sock",
				"wg show crosswire0",
				"upgrade " + testRelease + " CHART --reuse-values --set cleanup.enabled=true",
			}},
			{[]string{"--set", "cleanup.enabled=true"}, []string{
				"CLEANUP MODE",
				"kubectl -n " + testNamespace + " rollout status daemonset/" + fullName,
				"helm -n " + testNamespace + " uninstall " + testRelease,
			}},
		} {
			out, err := helm(t, append([]string{"install", testRelease, chartDir(t), "--namespace", testNamespace,
				"--kubeconfig", kubeconfig, "--dry-run=server"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			_, notes, ok := strings.Cut(out, "NOTES:")
			if !ok {
				t.Fatalf("no NOTES in helm install --dry-run output:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES (%v) lack %q:\n%s", tc.args, w, notes)
				}
			}
		}
	})

	// docs/helm.md says only the "privileged" Pod Security level admits the
	// agent: in a "baseline" namespace the API server warns that the pods
	// would be rejected (the DaemonSet itself is admitted; its pods not).
	t.Run("baseline namespace", func(t *testing.T) {
		const name = "crosswire-baseline"
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "baseline"}}}
		if _, err := srv.Client(t).CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, err := helm(t, "template", testRelease, chartDir(t), "--namespace", name)
		if err != nil {
			t.Fatal(err)
		}
		_, stderr := apply(t, out)
		for _, want := range []string{"would violate PodSecurity \"baseline:latest\"", "host namespaces", "hostPath volumes", "privileged"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("warnings lack %q:\n%s", want, stderr)
			}
		}
	})
}
