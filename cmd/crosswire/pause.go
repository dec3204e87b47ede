package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func newPauseCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "pause",
		Short: "Do nothing until SIGTERM or SIGINT, then exit 0 (cleanup mode's keep-alive container)",
		Long: "Do nothing until SIGTERM or SIGINT, then exit 0. Cleanup mode keeps a cleaned node's pod\n" +
			"running and ready with it, as a non-root user without capabilities, so the cluster needs no\n" +
			"pause image besides crosswire's.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return pause(cmd.Context(), cmd.ErrOrStderr())
		},
	}
}

// pause returns when ctx ends or a termination signal arrives. As PID 1 in
// a container, a signal without a handler would be ignored by the kernel:
// the handler installed here is what lets the kubelet stop the container
// without waiting for the grace period. The line on log says the handler
// is in place (and is what `kubectl logs` shows for the container).
func pause(ctx context.Context, log io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintln(log, pauseReadyLine)
	<-ctx.Done()
	return nil
}

const pauseReadyLine = "crosswire pause: waiting for SIGTERM or SIGINT"
