package controller

// Annotations crosswire reads from and writes to Node objects. The agent
// writes PublicKey and Endpoint on its own Node only; operators may set the
// two override annotations.
const (
	// AnnotationPublicKey holds the node's WireGuard public key (base64).
	AnnotationPublicKey = "crosswire.dev/public-key"
	// AnnotationEndpoint holds the node's WireGuard endpoint ("ip:port"),
	// published by its agent.
	AnnotationEndpoint = "crosswire.dev/endpoint"
	// AnnotationEndpointOverride is set by an operator when peers must reach
	// the node at an address other than its InternalIP (NAT, cross-cloud).
	// It wins over AnnotationEndpoint.
	AnnotationEndpointOverride = "crosswire.dev/endpoint-override"
	// AnnotationPodCIDRs is set by an operator for CNIs that do not fill
	// spec.podCIDRs: a comma-separated list of CIDRs. It wins over the spec.
	AnnotationPodCIDRs = "crosswire.dev/pod-cidrs"
	// AnnotationPQPort holds the UDP port of the node's post-quantum key
	// exchange, published by its agent with --post-quantum on or required
	// (docs/post-quantum.md); absent: the node has no post-quantum support.
	AnnotationPQPort = "crosswire.dev/pq-port"
)

// Limits that keep one hostile Node from costing every agent memory and
// kernel objects.
const (
	maxPodCIDRsPerNode = 16
	maxAnnotationBytes = 4096
)
