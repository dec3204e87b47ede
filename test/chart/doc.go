// Package chart tests the Helm chart in charts/crosswire: `helm lint`, the
// rendered manifests parsed into typed Kubernetes objects (DaemonSet,
// ServiceAccount, ClusterRole equal to controller.RBACRules, binding), every
// value reaching its agent flag, the rendered flags accepted by the real
// crosswire binary, the schema rejecting bad values, cleanup mode passing
// exactly the agent's datapath flags, and `kubectl apply --dry-run=server`
// against a real kube-apiserver (test/apiserver). The node-identity
// admission policy is applied for real and exercised with tokens bound to
// pods on two Nodes (policy_apiserver_test.go), and type-checked by
// kube-controller-manager (policy_typecheck_test.go).
//
// helm is built from source by test/tools/build.sh into
// $CROSSWIRE_TOOLS/helm-<version>/ (see HelmPath); the tests fail with the
// build command when it is missing.
package chart
