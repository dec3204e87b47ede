package chart

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/crosswire/crosswire/internal/testenv"
	"github.com/crosswire/crosswire/test/apiserver"
)

// typeCheckWarnings waits until kube-controller-manager has type-checked
// the current generation of policy name, and returns its warnings.
func typeCheckWarnings(t *testing.T, c *policyCluster, name string) []admissionv1.ExpressionWarning {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		p, err := c.admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.ObservedGeneration == p.Generation && p.Status.TypeChecking != nil {
			return p.Status.TypeChecking.ExpressionWarnings
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy %s not type-checked after 60 s: status %+v", name, p.Status)
		}
	}
}

// TestNodeIdentityPolicyTypeChecks: every expression of the chart's policy
// type-checks against Node's schema. The API server evaluates expressions
// with type errors anyway, failing only when a request reaches them, so a
// misspelt field would deny (or, in a guarded branch, silently pass) only
// some requests. kube-controller-manager's type checker reports such
// mistakes in the policy's status, but only for resources it can resolve
// to one schema (not for apiVersions "*" or "nodes/*"): a policy with the
// chart's match constraints and a misspelt field is the control that it
// does here.
func TestNodeIdentityPolicyTypeChecks(t *testing.T) {
	bin := filepath.Join(apiserver.DefaultToolsDir(), "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(t, "%s is missing: build it with test/tools/build.sh", bin)
	}
	c := newPolicyCluster(t)
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kcm.kubeconfig")
	c.srv.Kubeconfig(t, c.srv.Admin, kubeconfig)
	logPath := filepath.Join(dir, "kube-controller-manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig="+kubeconfig,
		"--controllers=validatingadmissionpolicy-status-controller",
		"--leader-elect=false", "--secure-port=0", "--v=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("last lines of kube-controller-manager.log:\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	}()

	typo := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "typo-control"},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: c.m.Policy.Spec.MatchConstraints,
			Validations:      []admissionv1.Validation{{Expression: "object.spec.unschedulabel == false"}},
		},
	}
	if _, err := c.admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(t.Context(), typo, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if w := typeCheckWarnings(t, c, typo.Name); len(w) == 0 || !strings.Contains(w[0].Warning, "unschedulabel") {
		t.Errorf("control policy with a misspelt field: warnings %+v, want one naming it", w)
	}
	if w := typeCheckWarnings(t, c, c.policy); len(w) > 0 {
		t.Errorf("chart policy type-check warnings: %+v", w)
	} else {
		t.Logf("%s: %d validations, %d variables, type-checked without warnings",
			c.policy, len(c.m.Policy.Spec.Validations), len(c.m.Policy.Spec.Variables))
	}
}
