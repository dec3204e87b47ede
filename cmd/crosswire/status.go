package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crosswire/crosswire/agentstatus"
)

// errUnhealthy makes `crosswire status` exit 1 after printing the report.
var errUnhealthy = errors.New("datapath unhealthy")

func newStatusCommand() *cobra.Command {
	socket := DefaultStatusSocket
	output := "text"
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show this node's agent status (from its status socket); exit 1 when the datapath is unhealthy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			return runStatus(ctx, cmd.OutOrStdout(), socket, output)
		},
	}
	cmd.Flags().StringVar(&socket, "status-socket", socket, "the agent's status socket")
	cmd.Flags().StringVarP(&output, "output", "o", output, "text or json")
	return cmd
}

func runStatus(ctx context.Context, w io.Writer, socket, output string) error {
	if output != "text" && output != "json" {
		return fmt.Errorf("-o %q: want text or json", output)
	}
	r, err := agentstatus.Fetch(ctx, socket)
	if err != nil {
		return err
	}
	if output == "json" {
		err = agentstatus.WriteJSON(w, r)
	} else {
		err = agentstatus.WriteText(w, r)
	}
	if err != nil {
		return err
	}
	return statusExit(r)
}

// statusExit is the exit rule: unhealthy (see agentstatus: not applied,
// last apply failed, a peer waiting for its key, stale or rejected) is an
// error, so the command exits 1.
func statusExit(r *agentstatus.Report) error {
	if r.Healthy {
		return nil
	}
	return fmt.Errorf("%w: %s", errUnhealthy, strings.Join(r.Problems, "; "))
}
