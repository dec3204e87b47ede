// Package nft renders and programs crosswire's nftables table.
//
// The table (family inet) holds four interval sets of pod CIDRs (local4,
// local6, remote4, remote6) and a prerouting chain that sets crosswire's mark
// bits on pod egress bound for another node's pod CIDR, and on packets that
// come out of the WireGuard tunnel (so that strict reverse-path filtering with
// src_valid_mark finds the tunnel's routes).
//
// Render is pure and describes the whole table; a Manager programs it over
// netlink (github.com/google/nftables, never the nft binary), always as one
// atomic batch, and only ever touches its own table. The package knows
// nothing of routing, WireGuard or Kubernetes.
package nft
