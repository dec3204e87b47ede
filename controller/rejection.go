package controller

import "errors"

// ReasonGroup says, from a fixed set, why a Node was rejected. It is the
// label of the crosswire_rejected_nodes metric: set where the check fails,
// so rewording a message never moves a Node from one series to another.
type ReasonGroup string

// The reason groups.
const (
	// GroupKey: the public key annotation is malformed or oversize.
	GroupKey ReasonGroup = "key"
	// GroupCIDR: a pod CIDR is malformed, too short, reserved, or there are
	// too many.
	GroupCIDR ReasonGroup = "cidr"
	// GroupOverlap: a pod CIDR overlaps one an older Node already claims.
	GroupOverlap ReasonGroup = "overlap"
	// GroupDuplicateKey: another Node, or this node itself, holds the key.
	GroupDuplicateKey ReasonGroup = "duplicate_key"
	// GroupEndpoint: the endpoint (annotation or InternalIP) is malformed
	// or lies inside a pod CIDR.
	GroupEndpoint ReasonGroup = "endpoint"
	// GroupOther: anything else (no name, a duplicated name, an oversize
	// annotation crosswire does not read).
	GroupOther ReasonGroup = "other"
)

// ReasonGroups lists every group, in label order.
func ReasonGroups() []ReasonGroup {
	return []ReasonGroup{GroupKey, GroupCIDR, GroupOverlap, GroupDuplicateKey, GroupEndpoint, GroupOther}
}

// Rejection records a Node that was left out of the desired state: Reason
// is the message for people (logs, Events, `crosswire status`), Group its
// fixed group for metrics.
type Rejection struct {
	Node   string
	Reason string
	Group  ReasonGroup
}

// rejectError is a validation error with its group, so that Build can
// record the group of an error found while parsing.
type rejectError struct {
	group ReasonGroup
	err   error
}

func (e *rejectError) Error() string { return e.err.Error() }
func (e *rejectError) Unwrap() error { return e.err }

// inGroup tags err with group (nil stays nil).
func inGroup(group ReasonGroup, err error) error {
	if err == nil {
		return nil
	}
	return &rejectError{group: group, err: err}
}

// groupOf returns the group err was tagged with, GroupOther if none.
func groupOf(err error) ReasonGroup {
	if re, ok := errors.AsType[*rejectError](err); ok {
		return re.group
	}
	return GroupOther
}

// annotationGroup is the group of a problem with annotation k itself (its
// size): that of the value it carries.
func annotationGroup(k string) ReasonGroup {
	switch k {
	case AnnotationPublicKey:
		return GroupKey
	case AnnotationEndpoint, AnnotationEndpointOverride:
		return GroupEndpoint
	case AnnotationPodCIDRs:
		return GroupCIDR
	}
	return GroupOther
}
