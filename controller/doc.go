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
// KubeSource needs exactly the rules of RBACRules, bound cluster-wide (Nodes
// are cluster-scoped; Events about Nodes land in the "default" namespace) to
// the agent's ServiceAccount through a ClusterRole:
//
//	apiGroups: [""]               resources: [nodes]  verbs: [get, list, watch, patch]
//	apiGroups: [""]               resources: [events] verbs: [create, patch]
//	apiGroups: ["events.k8s.io"]  resources: [events] verbs: [create, patch]
//
// patch on nodes is for the agent's own Node only (metadata.annotations
// crosswire.dev/public-key and crosswire.dev/endpoint, a JSON merge patch);
// RBAC cannot restrict it to one name for a DaemonSet, so the code never
// patches any other Node. A ValidatingAdmissionPolicy that allows a node's
// agent to change only its own Node's crosswire annotations would close
// that gap. Event patch is how the recorder updates the count of a repeated
// Event; the events.k8s.io rule covers the newer Events API.
package controller
