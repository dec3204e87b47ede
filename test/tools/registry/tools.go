//go:build tools

// Package tools records the command build.sh compiles, so `go mod tidy`
// keeps every package it needs in go.mod and go.sum.
package tools

import (
	_ "github.com/distribution/distribution/v3/cmd/registry"
)
