package controller

// RBACRule is one RBAC rule in the form of rbac.authorization.k8s.io/v1.
type RBACRule struct {
	// Namespace is where the rule applies: "" for every namespace and
	// cluster-scoped resources (a ClusterRole), else only that namespace
	// (a Role there).
	Namespace string
	APIGroups []string
	Resources []string
	Verbs     []string
}

// RBACRules returns the minimal rules the Kubernetes source needs; the
// package documentation says why each one is there. The chart's ClusterRole
// and Role are tested against it, and TestRBACRulesAreLeastPrivilege shows
// against a real API server what breaks without each verb.
func RBACRules() []RBACRule {
	return []RBACRule{
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "watch", "patch"}},
		// Events about a Node (cluster-scoped) are recorded in "default".
		{Namespace: "default", APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
}
