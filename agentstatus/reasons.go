package agentstatus

import "strings"

// Reason groups: the label values of crosswire_rejected_nodes, a fixed set
// so that free-form rejection messages never become label values.
const (
	ReasonKey          = "key"
	ReasonCIDR         = "cidr"
	ReasonOverlap      = "overlap"
	ReasonDuplicateKey = "duplicate_key"
	ReasonEndpoint     = "endpoint"
	ReasonOther        = "other"
)

// ReasonGroups lists every group, in label order.
var ReasonGroups = []string{ReasonKey, ReasonCIDR, ReasonOverlap, ReasonDuplicateKey, ReasonEndpoint, ReasonOther}

// ReasonGroup maps a rejection message of the controller (or the agent)
// onto its group. Order matters: "endpoint … lies inside pod CIDR" is an
// endpoint problem, "public key already used" a duplicate, not a bad key.
func ReasonGroup(reason string) string {
	r := strings.ToLower(reason)
	switch {
	case strings.Contains(r, "public key already used"), strings.Contains(r, "public key is this node's own key"):
		return ReasonDuplicateKey
	case strings.Contains(r, "overlaps") && strings.Contains(r, "claimed"):
		return ReasonOverlap
	case strings.Contains(r, "lies inside pod cidr"):
		return ReasonEndpoint
	case strings.Contains(r, "public-key"), strings.Contains(r, "public key"):
		return ReasonKey
	case strings.Contains(r, "endpoint"), strings.Contains(r, "internalip"):
		return ReasonEndpoint
	case strings.Contains(r, "cidr"):
		return ReasonCIDR
	}
	return ReasonOther
}
