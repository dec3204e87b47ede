package main

import (
	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "crosswire",
		Short:         "Transparent WireGuard encryption of pod traffic between Kubernetes nodes",
		Version:       versionLine(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(newAgentCommand(), newCleanupCommand(), newPubkeyCommand(), newStatusCommand(),
		newSysctlCommand(), newPauseCommand(), newVersionCommand())
	return root
}
