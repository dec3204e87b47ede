// Package wgtun runs crosswire's userspace WireGuard device (wireguard-go on
// a TUN): keys, the device itself, peers written as minimal UAPI diffs, the
// UAPI socket that makes `wg show` work, and peer statistics. It knows
// nothing of Kubernetes or nftables.
package wgtun
