package cwcluster

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/crosswire/crosswire/controller"
)

// GrantAgentRBAC grants subject exactly the agent's rules
// (controller.RBACRules), as the chart does: the cluster-wide ones through
// a ClusterRole, the namespaced ones through a Role in their namespace, all
// named name. Test agents then run with no more rights than real ones.
func GrantAgentRBAC(ctx context.Context, admin kubernetes.Interface, name string, subject rbacv1.Subject) error {
	rbac := admin.RbacV1()
	cluster := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}}
	namespaced := map[string]*rbacv1.Role{}
	for _, r := range controller.RBACRules() {
		rule := rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: r.Verbs}
		if r.Namespace == "" {
			cluster.Rules = append(cluster.Rules, rule)
			continue
		}
		if namespaced[r.Namespace] == nil {
			namespaced[r.Namespace] = &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.Namespace}}
		}
		namespaced[r.Namespace].Rules = append(namespaced[r.Namespace].Rules, rule)
	}
	if _, err := rbac.ClusterRoles().Create(ctx, cluster, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create ClusterRole %s: %w", name, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{subject},
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create ClusterRoleBinding %s: %w", name, err)
	}
	for ns, role := range namespaced {
		if _, err := rbac.Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create Role %s/%s: %w", ns, name, err)
		}
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{subject},
		}
		if _, err := rbac.RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create RoleBinding %s/%s: %w", ns, name, err)
		}
	}
	return nil
}
