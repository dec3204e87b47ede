package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// Stamped at link time by the image build (-ldflags "-X main.version=...
// -X main.revision=..."): a linker can only set package-level string
// variables, so these are never assigned at run time.
var (
	version  = "dev"
	revision = "unknown"
)

// versionLine is what `crosswire version` and `crosswire --version` print:
// enough to tell two images apart from inside a pod.
func versionLine() string {
	return fmt.Sprintf("crosswire %s (revision %s, %s, %s/%s)", version, revision, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, source revision and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return err
		},
	}
}
