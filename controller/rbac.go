package controller

// RBACRule is one ClusterRole rule in the form of rbac.authorization.k8s.io/v1.
type RBACRule struct {
	APIGroups []string
	Resources []string
	Verbs     []string
}

// RBACRules returns the minimal ClusterRole rules the Kubernetes source
// needs; the package documentation says why each one is there. The chart's
// ClusterRole is tested against it, and TestRBACRulesAreLeastPrivilege shows
// against a real API server what breaks without each verb.
func RBACRules() []RBACRule {
	return []RBACRule{
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list", "watch", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
}
