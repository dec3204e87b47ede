package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/crosswire/crosswire/wgtun"
)

func newPubkeyCommand() *cobra.Command {
	o := defaultOptions()
	cmd := &cobra.Command{
		Use:   "pubkey",
		Short: "Print this node's WireGuard public key, creating the private key if needed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, _, err := wgtun.LoadOrCreateKey(o.keyFile())
			if err != nil {
				return fmt.Errorf("private key: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), key.PublicKey().String())
			return nil
		},
	}
	cmd.Flags().StringVar(&o.stateDir, "state-dir", o.stateDir, "directory for the node's private key")
	return cmd
}
