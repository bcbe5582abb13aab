package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/ledger"
)

// The ledger's recovery commands (docs/ledger.md, "Lost writes and
// re-anchoring"; docs/operations.md, "A halted ledger").

func newLedgerDiagnose() *cobra.Command {
	var nodes []string
	var acc access
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diagnose TOPIC",
		Short: "Show where the store's ledger of a topic and the nodes' copies part",
		Long: `Ask every node of --node (the admin right) where the store's ledger of TOPIC
and that node's copy part: the last seq on which they agree, the first
divergent seq with both leaf hashes, the sizes, the store's latest
checkpoint and its cosigners, the node's halt, if any, and the
re-anchors on record; then what can be done. --json prints the nodes'
diagnoses as JSON. The exit status is 1 if a node's copy holds leaves the
store lost.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			if err := baton.ValidTopic(topic); err != nil {
				return err
			}
			c, err := acc.client(nodes)
			if err != nil {
				return err
			}
			var ds []ledger.Diagnosis
			var failed []string
			for _, n := range c.Nodes() {
				d, err := c.Diagnose(cmd.Context(), n, topic)
				if err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", n, err))
					continue
				}
				ds = append(ds, d)
			}
			if len(ds) == 0 {
				return fmt.Errorf("ledger diagnose: no node answered: %s", strings.Join(failed, "; "))
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(ds); err != nil {
					return err
				}
			} else {
				printDiagnoses(out, topic, ds, failed)
			}
			for _, d := range ds {
				if d.Diverged {
					return exitError{code: 1}
				}
			}
			return nil
		},
	}
	nodesFlag(cmd, &nodes)
	acc.flags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print every node's diagnosis as JSON")
	return cmd
}

func printDiagnoses(w io.Writer, topic string, ds []ledger.Diagnosis, failed []string) {
	var halted, diverged []string
	for _, d := range ds {
		if d.Halted != nil {
			halted = append(halted, d.Node+" ("+d.Halted.Check+")")
		}
		if d.Diverged {
			diverged = append(diverged, d.Node)
		}
	}
	switch {
	case len(halted) > 0:
		fmt.Fprintf(w, "%s: HALTED on %s\n", topic, strings.Join(halted, ", "))
	case len(diverged) > 0:
		fmt.Fprintf(w, "%s: the store lost leaves that %s hold\n", topic, strings.Join(diverged, ", "))
	default:
		fmt.Fprintf(w, "%s: the store and every copy asked agree\n", topic)
	}
	d0 := ds[0]
	fmt.Fprintf(w, "  store: cursor %d (epoch %d), queue up to %d", d0.Cursor.Seq, d0.Cursor.Epoch, d0.QueueLastSeq)
	if cp := d0.StoreCheckpoint; cp != nil {
		fmt.Fprintf(w, ", latest checkpoint %d root %s (epoch %d by %s, cosigned by %s)", cp.Size, cp.Root, cp.Epoch, cp.Node, orNone(cp.Cosigners))
	} else {
		fmt.Fprint(w, ", no checkpoint")
	}
	fmt.Fprintln(w)
	for _, d := range ds {
		fmt.Fprintf(w, "  %s: copy of %d leaves", d.Node, d.CopySize)
		if a := d.Accepted; a != nil {
			fmt.Fprintf(w, ", accepted checkpoint %d root %s (epoch %d by %s)", a.Size, a.Root, a.Epoch, a.Node)
		}
		fmt.Fprintf(w, "; agrees with the store up to seq %d", d.Agreed)
		if d.Diverged {
			store := "none"
			if d.StoreLeaf != nil {
				store = d.StoreLeaf.String()
			}
			fmt.Fprintf(w, "; first divergent seq %d: store leaf %s, copy leaf %s", d.FirstDivergent, store, d.CopyLeaf)
		}
		fmt.Fprintln(w)
		if d.Halted != nil {
			fmt.Fprintf(w, "    halted (%s): %s\n", d.Halted.Check, d.Halted.Message)
		}
	}
	for _, f := range failed {
		fmt.Fprintf(w, "  %s\n", f)
	}
	for _, r := range d0.Reanchors {
		fmt.Fprintf(w, "  re-anchored from seq %d (leaves %d..%d lost) by %s on %s at %s: %s", r.Seq, r.Seq+1, r.LostSize, r.By, r.Node, r.At.Format("2006-01-02T15:04:05Z07:00"), r.Reason)
		if r.Problem != "" {
			fmt.Fprintf(w, " [DOES NOT VERIFY: %s]", r.Problem)
		}
		fmt.Fprintln(w)
	}
	// The advice of a node whose copy diverged, else the first's.
	advice := d0.Advice
	for _, d := range ds {
		if d.Diverged {
			advice = d.Advice
			break
		}
	}
	fmt.Fprintln(w, "what to do:")
	for i, a := range advice {
		fmt.Fprintf(w, "  %d. %s\n", i+1, a)
	}
}

func orNone(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	return strings.Join(ss, ", ")
}

func newLedgerReanchor() *cobra.Command {
	var nodes []string
	var acc access
	var from uint64
	var reason string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "reanchor TOPIC --from SEQ --reason TEXT",
		Short: "Accept that the store lost writes: resume TOPIC's ledger from SEQ, signed and recorded",
		Long: `Ask a node (the admin right) to sign and store a re-anchor of TOPIC's ledger:
the store's ledger stands from SEQ on, the witnessed leaves after SEQ are
recorded as lost, with the token's subject as who asked and --reason. SEQ
must be the last seq on which the store and the node's copy agree ('baton
ledger diagnose'). Every node's witness checks the re-anchor against its
own copy before it resumes; 'baton ledger verify' reports it. Nothing is
rewritten: the old checkpoints and the record stay.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			if err := baton.ValidTopic(topic); err != nil {
				return err
			}
			if !cmd.Flags().Changed("from") {
				return baton.Invalidf("--from", "required: the seq 'baton ledger diagnose' names")
			}
			if err := ledger.ValidReason(reason); err != nil {
				return fmt.Errorf("--reason: %w", err)
			}
			c, err := acc.client(nodes)
			if err != nil {
				return err
			}
			b, err := c.Reanchor(cmd.Context(), "", topic, from, reason)
			if err != nil {
				return fmt.Errorf("ledger reanchor %s: %w", topic, err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(b)
			}
			fmt.Fprintf(out, "%s: re-anchored from seq %d (root %s); leaves %d..%d recorded as lost; signed by %s for %s\n",
				topic, b.Seq, b.Root, b.Seq+1, b.LostSize, b.Node, b.By)
			fmt.Fprintf(out, "every node's witness now checks it and rebuilds its copy; follow with 'baton ledger diagnose %s' and 'baton ledger verify %s'\n", topic, topic)
			return nil
		},
	}
	nodesFlag(cmd, &nodes)
	acc.flags(cmd)
	f := cmd.Flags()
	f.Uint64Var(&from, "from", 0, "the last seq on which the store and the copies agree (baton ledger diagnose)")
	f.StringVar(&reason, "reason", "", "why (one line, recorded and signed)")
	f.BoolVar(&asJSON, "json", false, "print the re-anchor as JSON")
	return cmd
}
