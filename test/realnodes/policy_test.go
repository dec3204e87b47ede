package realnodes

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/crosswire/crosswire/test/kubecluster"
)

// policyName is the chart's node-identity policy for release "crosswire".
const policyName = release + "-node-identity"

// checkNodeIdentityPolicy: with the default values the chart's admission
// policy is installed, type-checks without warnings and is in force, and every agent (authenticated by the
// token the kubelet projected into its pod) still published its key on its
// own Node under it: checkAgents checked the keys, and every Node records
// crosswire-agent's write. A token bound to node 0's agent pod may not
// write node 1's key (a dry run: nothing changes if it were allowed).
func checkNodeIdentityPolicy(t *testing.T, c *kubecluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := c.Client()
	// kube-controller-manager type-checks the expressions against Node's
	// schema and reports mistakes (a misspelt field) in the status.
	for {
		p, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, policyName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("policy: %v", err)
		}
		if p.Status.ObservedGeneration == p.Generation && p.Status.TypeChecking != nil {
			if w := p.Status.TypeChecking.ExpressionWarnings; len(w) > 0 {
				t.Errorf("policy type-check warnings: %+v", w)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("policy not type-checked: status %+v", p.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(ctx, policyName, metav1.GetOptions{}); err != nil {
		t.Fatalf("policy binding: %v", err)
	}
	pods, err := cs.CoreV1().Pods(releaseNS).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
	if err != nil {
		t.Fatal(err)
	}
	agentOn := map[string]string{} // node -> agent pod
	var sa string
	var uid types.UID
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			agentOn[p.Spec.NodeName] = p.Name
			if p.Spec.NodeName == c.Nodes[0].Name {
				sa, uid = p.Spec.ServiceAccountName, p.UID
			}
		}
	}
	for _, n := range c.Nodes {
		node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var managers []string
		for _, mf := range node.ManagedFields {
			managers = append(managers, mf.Manager)
		}
		if !strings.Contains(strings.Join(managers, ","), "crosswire-agent") {
			t.Errorf("%s: no write by crosswire-agent in managedFields %v", n.Name, managers)
		}
	}

	tok, err := cs.CoreV1().ServiceAccounts(releaseNS).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: agentOn[c.Nodes[0].Name], UID: uid}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(c.API.Admin)
	cfg.BearerToken = tok.Status.Token
	agent, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"metadata":{"annotations":{%q:"forged"}}}`, keyAnnotation)
	_, err = agent.CoreV1().Nodes().Patch(ctx, c.Nodes[1].Name, types.MergePatchType, []byte(body),
		metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy '"+policyName+"'") {
		t.Errorf("%s's agent token writing %s's key: %v; want denied by %s", c.Nodes[0].Name, c.Nodes[1].Name, err, policyName)
	} else {
		t.Logf("%s's agent token writing %s's key: %v", c.Nodes[0].Name, c.Nodes[1].Name, err)
	}
}
