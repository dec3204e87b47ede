// Package wgtun runs crosswire's userspace WireGuard device (wireguard-go on
// a TUN): keys, the device itself, peers written as minimal UAPI diffs, the
// UAPI socket that makes `wg show` work, and peer statistics. It knows
// nothing of Kubernetes or nftables.
//
// With Config.OnDemand, wireguard-go holds only the peers that carry
// traffic: the rest of the desired set is configured when a packet to or
// from one of them shows up, and removed again once idle (see ondemand.go).
package wgtun
