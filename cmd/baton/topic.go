package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// newTopic is `baton topic delete|retention`: a topic's lifecycle, through
// the HTTP API (an admin token where the nodes check tokens).
func newTopic() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Delete a topic, or read and set its retention",
	}
	cmd.AddCommand(newTopicDelete(), newTopicRetention())
	return cmd
}

func newTopicDelete() *cobra.Command {
	var nodes []string
	var acc access
	var ledger string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "delete TOPIC",
		Short: "Delete a topic: its queue, lock and retention; its ledger only with --ledger=delete",
		Long: `Delete a topic at once, on every node: its items (published or not), its
msg id and hash indexes, its lock and its retention. Its publisher is fenced,
its terminals get a "deleted" event. The ledger, its checkpoints and release
records are kept unless --ledger=delete: they are the audit trail of what was
published, and a topic of the same name created later continues them
(docs/design.md, "Topic lifecycle").`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := baton.ValidTopic(args[0]); err != nil {
				return err
			}
			if ledger != "keep" && ledger != "delete" {
				return baton.Invalidf("--ledger", "%q: want keep or delete", ledger)
			}
			c, err := acc.client(nodes)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			d, err := c.DeleteTopic(ctx, args[0], ledger == "delete")
			if err != nil {
				return fmt.Errorf("delete topic %s: %w", args[0], err)
			}
			kept := fmt.Sprintf("ledger kept (%d leaves; the topic continues at seq %d if used again)", d.LedgerSize, d.LedgerSize+1)
			if d.LedgerDeleted {
				kept = "ledger deleted"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted %s: %d items (%d unpublished), lock epoch %d, %s\n",
				d.Topic, d.Items, d.Unpublished, d.Epoch, kept)
			return nil
		},
	}
	topicFlags(cmd, &nodes, &acc, &timeout)
	cmd.Flags().StringVar(&ledger, "ledger", "keep", "keep or delete the topic's ledger and checkpoints")
	return cmd
}

func newTopicRetention() *cobra.Command {
	var nodes []string
	var acc access
	var items int64
	var age string
	var reset bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "retention TOPIC",
		Short: "Read a topic's retention, or set it with --items, --age or --reset",
		Long: `Without flags, print the topic's retention and what the nodes apply. With
--items (a count, -1 for no count limit) and/or --age (a duration such as
24h, "none" for no age limit), set it: a field not given goes back to the
nodes' default (--retain, --retain-age). --reset sets both to the default.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set := reset || cmd.Flags().Changed("items") || cmd.Flags().Changed("age")
			want := wire.Retention{Items: items, Age: age}
			if reset {
				want = wire.Retention{}
			}
			if _, err := want.Parse(args[0]); err != nil {
				return err
			}
			c, err := acc.client(nodes)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			var out wire.RetentionResponse
			if set {
				out, err = c.SetRetention(ctx, args[0], want)
			} else {
				out, err = c.Retention(ctx, args[0])
			}
			if err != nil {
				return fmt.Errorf("retention of %s: %w", args[0], err)
			}
			b, _ := json.MarshalIndent(out, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return nil
		},
	}
	topicFlags(cmd, &nodes, &acc, &timeout)
	cmd.Flags().Int64Var(&items, "items", 0, "published items kept (0: the nodes' default, -1: no count limit)")
	cmd.Flags().StringVar(&age, "age", "", `how long published items are kept ("24h"; "": the nodes' default, "none": no age limit)`)
	cmd.Flags().BoolVar(&reset, "reset", false, "go back to the nodes' defaults")
	return cmd
}

// topicFlags are the flags every topic command has: the nodes, how to
// reach them, and how long to try.
func topicFlags(cmd *cobra.Command, nodes *[]string, acc *access, timeout *time.Duration) {
	nodesFlag(cmd, nodes)
	acc.flags(cmd)
	cmd.Flags().DurationVar(timeout, "timeout", 30*time.Second, "how long to try")
}
