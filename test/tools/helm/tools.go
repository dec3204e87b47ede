//go:build tools

// Package tools records the command test/tools/build.sh compiles (helm), so
// `go mod tidy` keeps every package it needs in go.mod and go.sum.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
