package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newDrain() *cobra.Command {
	var nodes []string
	var acc access
	var undo bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "drain",
		Short: "Hand every topic of a node over to the others before stopping it",
		Long: `Drain each node of --node: it hands every topic it publishes over to the
other nodes (graceful hand-overs: nothing lost, milliseconds each) and takes
none back, while it goes on serving terminals and accepting items. drain
waits until the node holds no lease (--timeout). --undo lets the nodes race
for topics again; the others then hand some back until leases are balanced.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := acc.client(nodes)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			for _, n := range c.Nodes() {
				d, err := c.Drain(ctx, n, !undo)
				for err == nil && !undo && d.Leases > 0 {
					select {
					case <-ctx.Done():
						return fmt.Errorf("drain %s: still holds %d leases after %v", n, d.Leases, timeout)
					case <-time.After(100 * time.Millisecond):
					}
					d, err = c.Drain(ctx, n, true)
				}
				if err != nil {
					return fmt.Errorf("drain %s: %w", n, err)
				}
				state := "drained: holds no lease"
				if undo {
					state = "racing for topics again"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s (%s): %s\n", d.Node, n, state)
			}
			return nil
		},
	}
	nodesFlag(cmd, &nodes)
	acc.flags(cmd)
	cmd.Flags().BoolVar(&undo, "undo", false, "let the nodes race for topics again")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the nodes to hand their topics over")
	return cmd
}
