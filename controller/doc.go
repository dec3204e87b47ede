// Package controller turns Kubernetes Node objects into crosswire's desired
// datapath state (this node's pod CIDRs and one peer per other node), and
// publishes this node's WireGuard public key and endpoint on its own Node.
// Its peers are the engine's own proxy.Peer, each key parsed here once into
// a wgtun.Key; beyond those types it knows nothing of nftables, netlink or
// the WireGuard UAPI.
//
// Two sources feed the agent: FileSource (a NodeList file) and KubeSource
// (the API server, through a Node informer).
//
// # RBAC
//
// KubeSource needs exactly the rules of RBACRules, bound to the agent's
// ServiceAccount: Nodes through a ClusterRole (they are cluster-scoped),
// Events through a Role in "default", where Events about cluster-scoped
// objects are recorded:
//
//	ClusterRole:       apiGroups: [""]  resources: [nodes]  verbs: [list, watch, patch]
//	Role in "default": apiGroups: [""]  resources: [events] verbs: [create, patch]
//
// list and watch feed the Node informer (client-go streams the initial list
// over the watch where the API server can, and lists where it cannot);
// patch publishes this node's key and endpoint (metadata.annotations
// crosswire.dev/public-key and crosswire.dev/endpoint, a JSON merge patch);
// Event create records rejections and publications, and Event patch is how
// the recorder counts a repeated Event. Nothing reads a single Node (the
// informer's cache serves that) or uses the events.k8s.io API, so neither
// get nor that group is granted. TestRBACRulesAreLeastPrivilege removes
// each verb in turn against a real API server and shows what breaks.
//
// RBAC cannot restrict patch to one Node for a DaemonSet, so the code never
// patches any other Node, and the chart's ValidatingAdmissionPolicy makes
// the API server enforce it: the agent's ServiceAccount may change only
// those two annotations, only on the Node named in its pod-bound token.
package controller
