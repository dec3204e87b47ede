// Command crosswire is the node agent of crosswire, transparent WireGuard
// encryption of pod traffic between Kubernetes nodes.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "crosswire:", err)
		os.Exit(1)
	}
}
