//go:build tools

// Package tools records the command build.sh compiles (wireguard-go's main
// package is its module root), so `go mod tidy` keeps what it needs.
package tools

import (
	_ "golang.zx2c4.com/wireguard"
)
