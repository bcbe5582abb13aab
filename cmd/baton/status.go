package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/wire"
)

func newStatus() *cobra.Command {
	var nodes []string
	var acc access
	var pg page
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the nodes: topics, holders, epochs, lag, terminals, problems",
		Long: `Ask every node of --node for its status and print a summary: one line per
node (access, topics it publishes, topics in the store, problems), the
topic counts, and one line per topic of one page (holder, epoch, lease
left, last seq, cursor, lag, terminals on all nodes): the first 100 topics
in name order, or --limit of them after --after. --json prints the first
node's status as JSON.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := acc.client(nodes)
			if err != nil {
				return err
			}
			if asJSON {
				st, err := pg.status(cmd.Context(), c, "")
				if err != nil {
					return fmt.Errorf("status: %w", err)
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			v := gather(cmd.Context(), c, pg)
			if len(v.answered) == 0 {
				return fmt.Errorf("status: no node answered: %w", v.errs[0].err)
			}
			v.print(cmd.OutOrStdout(), time.Now(), nil)
			return nil
		},
	}
	nodesFlag(cmd, &nodes)
	acc.flags(cmd)
	pg.flags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the first node's status as JSON")
	return cmd
}

func newTop() *cobra.Command {
	var nodes []string
	var acc access
	var pg page
	var every time.Duration
	var rounds int
	cmd := &cobra.Command{
		Use:   "top",
		Short: "A live view of the nodes and topics, refreshed every second",
		Long: `Like status, redrawn every --interval, with each topic's publishing rate
(items/s) since the last round, for one page of topics (the first 100, or
--limit after --after). Plain text and ANSI clears: it works in any
terminal and over SSH. Ctrl-C ends it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := acc.client(nodes)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var prev *view
			t := time.NewTicker(every)
			defer t.Stop()
			for i := 0; rounds == 0 || i < rounds; i++ {
				v := gather(cmd.Context(), c, pg)
				fmt.Fprint(out, "\x1b[H\x1b[2J")
				fmt.Fprintf(out, "baton top, every %v, %s (Ctrl-C ends)\n\n", every, time.Now().Format("15:04:05"))
				v.print(out, time.Now(), prev)
				prev = &v
				if i+1 == rounds {
					break
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-t.C:
				}
			}
			return nil
		},
	}
	nodesFlag(cmd, &nodes)
	acc.flags(cmd)
	pg.flags(cmd)
	cmd.Flags().DurationVar(&every, "interval", time.Second, "refresh interval")
	cmd.Flags().IntVar(&rounds, "rounds", 0, "stop after this many rounds (0: until Ctrl-C)")
	_ = cmd.Flags().MarkHidden("rounds")
	return cmd
}

// page is the page of topics status and top show.
type page struct {
	after string
	limit int
}

func (p *page) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.after, "after", "", "show the topics after this one, in name order")
	cmd.Flags().IntVar(&p.limit, "limit", 0, fmt.Sprintf("topics to show (default %d, at most %d)", wire.DefaultTopicsLimit, wire.MaxTopicsLimit))
}

// status reads one node's status (GET /v1/status) with the page's topics
// (GET /v1/topics?status=true).
func (p page) status(ctx context.Context, c *client.Client, node string) (wire.Status, error) {
	st, err := c.Status(ctx, node)
	if err != nil {
		return st, err
	}
	resp, err := c.Topics(ctx, node, client.TopicsQuery{After: p.after, Limit: p.limit, Status: true})
	if err != nil {
		return st, err
	}
	st.Topics, st.TopicsNext = resp.Statuses, resp.Next
	return st, nil
}

// view is the nodes' statuses at one moment.
type view struct {
	at       time.Time
	answered []wire.Status
	errs     []nodeErr
}

type nodeErr struct {
	node string
	err  error
}

func gather(ctx context.Context, c *client.Client, p page) view {
	v := view{at: time.Now()}
	for _, n := range c.Nodes() {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := p.status(ctx, c, n)
		cancel()
		if err != nil {
			v.errs = append(v.errs, nodeErr{n, err})
			continue
		}
		v.answered = append(v.answered, st)
	}
	return v
}

// print writes the summary; with prev, each topic's rate since then.
func (v view) print(w io.Writer, now time.Time, prev *view) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDR\tACCESS\tPUBLISHING\tTOPICS\tPROBLEMS\tWATCHING")
	var problems []string
	for _, st := range v.answered {
		watching := strings.Join(st.Watching, ",")
		if watching == "" {
			watching = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", st.Node, st.Addr, st.Access, st.Counts.Publishing, st.Counts.Topics, len(st.Problems), watching)
		for _, p := range st.Problems {
			where := ""
			if p.Topic != "" {
				where = " " + p.Topic
			}
			problems = append(problems, fmt.Sprintf("%s: %s%s: %s", st.Node, p.Kind, where, p.Message))
		}
	}
	for _, e := range v.errs {
		fmt.Fprintf(tw, "%s\t-\t-\t-\t-\tdoes not answer\t-\n", e.node)
		problems = append(problems, fmt.Sprintf("%s: %v", e.node, e.err))
	}
	tw.Flush()
	if len(v.answered) == 0 {
		return
	}
	// Topics as the first node that answered sees them (every node reads
	// the same store), terminals summed over every node.
	terms := make(map[string]int)
	for _, st := range v.answered {
		for _, t := range st.Topics {
			terms[t.Topic] += t.Terminals
		}
	}
	before := make(map[string]uint64)
	if prev != nil && len(prev.answered) > 0 {
		for _, t := range prev.answered[0].Topics {
			before[t.Topic] = t.Cursor.Seq
		}
	}
	first := v.answered[0]
	topics := append([]baton.TopicStatus(nil), first.Topics...)
	sort.Slice(topics, func(i, j int) bool { return topics[i].Topic < topics[j].Topic })
	fmt.Fprintf(w, "\n%d topics, %d with a publisher, %d without (as the members' heartbeats report)\n",
		first.Counts.Topics, first.Counts.Held, first.Counts.Unheld)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "TOPIC\tHOLDER\tEPOCH\tLEASE LEFT\tLAST\tCURSOR\tLAG\tTERMINALS"
	if prev != nil {
		head += "\tITEMS/S"
	}
	fmt.Fprintln(tw, head)
	for _, t := range topics {
		holder, left := "-", "-"
		if t.Held {
			holder = t.Holder
			left = t.ExpiresAt.Sub(now).Round(time.Millisecond).String()
		}
		lag := fmt.Sprint(t.QueueDepth)
		if t.Stalled {
			lag += " STALLED"
		}
		if l := t.Ledger; l != nil && l.Halted != nil {
			lag += " HALTED (" + l.Halted.Check + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\t%d", t.Topic, holder, t.Epoch, left, t.LastSeq, t.Cursor.Seq, lag, terms[t.Topic])
		if prev != nil {
			rate := "-"
			if seq, ok := before[t.Topic]; ok && v.at.After(prev.at) && t.Cursor.Seq >= seq {
				rate = fmt.Sprintf("%.0f", float64(t.Cursor.Seq-seq)/v.at.Sub(prev.at).Seconds())
			}
			fmt.Fprintf(tw, "\t%s", rate)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if first.TopicsNext != "" {
		fmt.Fprintf(w, "(%d topics shown; the next ones: --after %s)\n", len(topics), first.TopicsNext)
	}
	if len(problems) > 0 {
		fmt.Fprintf(w, "\nPROBLEMS\n  %s\n", strings.Join(problems, "\n  "))
	}
}
