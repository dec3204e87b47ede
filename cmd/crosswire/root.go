package main

import (
	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "crosswire",
		Short:         "Transparent WireGuard encryption of pod traffic between Kubernetes nodes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newAgentCommand(), newCleanupCommand(), newPubkeyCommand(), newStatusCommand())
	return root
}
