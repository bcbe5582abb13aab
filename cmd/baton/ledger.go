package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/dial"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/wire"
)

func newLedger() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Audit the shared publication ledger and check inclusion proofs",
		Long: `The ledger records, per topic, which node under which lease epoch published
which item, as an RFC 6962 Merkle log with signed, cosigned checkpoints
(see docs/ledger.md).`,
	}
	cmd.AddCommand(newLedgerVerify(), newLedgerProve(), newLedgerKeys(), newLedgerDiagnose(), newLedgerReanchor())
	return cmd
}

func openStore(ctx context.Context, raw string) (baton.Store, error) {
	st, err := dial.Open(ctx, raw, dial.Options{})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dial.Redact(raw), err)
	}
	return st, nil
}

func newLedgerVerify() *cobra.Command {
	var store string
	var asJSON, quiet bool
	var maxProblems int
	cmd := &cobra.Command{
		Use:   "verify [TOPIC]",
		Short: "Audit the ledger of one topic (or every topic) in the store",
		Long: `Audit the ledger in the store: recompute every leaf hash and the Merkle roots,
check every item still kept against its leaf, every checkpoint signature and
cosignature against the nodes' registered keys, that every leaf and
checkpoint was made by the holder of its lease epoch, that epochs never go
back and no epoch published after its lease ended, and that the cursor is at
the end of the log. Every problem is named with where it is. The exit status
is 1 if anything is wrong.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx, store)
			if err != nil {
				return err
			}
			defer st.Close()
			topics := args
			if len(topics) == 0 {
				if topics, err = st.Topics(ctx); err != nil {
					return fmt.Errorf("list topics: %w", err)
				}
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			bad := 0
			var reports []ledger.AuditReport
			for _, topic := range topics {
				if err := baton.ValidTopic(topic); err != nil {
					return err
				}
				start := time.Now()
				last := start
				o := ledger.AuditOptions{MaxProblems: maxProblems}
				if !quiet {
					o.Progress = func(topic string, done, total uint64) {
						if time.Since(last) < time.Second {
							return
						}
						last = time.Now()
						pct := 100.0
						if total > 0 {
							pct = 100 * float64(done) / float64(total)
						}
						rate := float64(done) / time.Since(start).Seconds()
						fmt.Fprintf(errOut, "%s: %d of %d leaves checked (%.0f%%, %.0f/s)\n", topic, done, total, pct, rate)
					}
				}
				rep, err := ledger.Audit(ctx, st, topic, o)
				if err != nil {
					return fmt.Errorf("audit %s: %w", topic, err)
				}
				if !rep.OK() {
					bad++
				}
				reports = append(reports, rep)
				if asJSON {
					continue
				}
				status := "OK"
				if !rep.OK() {
					status = fmt.Sprintf("%d PROBLEMS", len(rep.Problems)+rep.Omitted)
				}
				reanchored := ""
				if n := len(rep.Reanchors); n > 0 {
					reanchored = fmt.Sprintf(", %d re-anchors", n)
				}
				fmt.Fprintf(out, "%s: %d leaves, %d items checked (%d no longer kept), %d checkpoints, %d cosignatures, %d epochs%s: %s\n",
					topic, rep.Leaves, rep.ItemsChecked, rep.ItemsTrimmed, rep.Checkpoints, rep.Cosignatures, rep.Epochs, reanchored, status)
				for _, r := range rep.Reanchors {
					fmt.Fprintf(out, "  re-anchored from seq %d: leaves %d..%d of the witnessed ledger (root %s) were lost; signed by %s for %s at %s: %s\n",
						r.Seq, r.Seq+1, r.LostSize, r.LostRoot, r.Node, r.By, r.At.Format(time.RFC3339), r.Reason)
				}
				for _, p := range rep.Problems {
					fmt.Fprintf(out, "  %s: %s\n", p.Where, p.What)
				}
				if rep.Omitted > 0 {
					fmt.Fprintf(out, "  ... and %d more problems\n", rep.Omitted)
				}
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(reports); err != nil {
					return err
				}
			}
			if bad > 0 {
				if !asJSON {
					fmt.Fprintf(out, "ledger verify: %d of %d topics have problems\n", bad, len(topics))
				}
				return exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&store, "store", envOr("BATON_STORE", dial.DefaultURL), "store URL: sqlite://PATH or redis://HOST:PORT/DB")
	f.BoolVar(&asJSON, "json", false, "print the reports as JSON")
	f.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	f.IntVar(&maxProblems, "max-problems", 100, "list at most this many problems per topic")
	return cmd
}

func newLedgerProve() *cobra.Command {
	var nodeAddr string
	var keyFiles []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "prove TOPIC SEQ",
		Short: "Fetch an item's inclusion proof from a node and verify it against pinned keys",
		Long: `Fetch the inclusion proof of the item SEQ of TOPIC from a node and check it
offline: the checkpoint must carry a signature that verifies with one of the
pinned keys (--key files, each holding note verifier keys such as a node's
data-dir/node.pub or lines printed by 'baton ledger keys'), and the proof must
lead from the item's leaf to the checkpoint's root. The exit status is 1 if
the proof does not verify.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			if err := baton.ValidTopic(topic); err != nil {
				return err
			}
			seq, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil || seq == 0 {
				return baton.Invalidf("SEQ", "%q is not a positive integer", args[1])
			}
			if len(keyFiles) == 0 {
				return baton.Invalidf("--key", "at least one pinned key file is required")
			}
			keys := ledger.NewKeys(nil)
			for _, f := range keyFiles {
				b, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("read key file: %w", err)
				}
				for _, line := range strings.Split(string(b), "\n") {
					if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
						continue
					}
					if strings.HasPrefix(line, "PRIVATE+KEY") {
						return fmt.Errorf("key file %s holds a private key: pin public keys only", f)
					}
					if err := keys.AddVerifierKey(line); err != nil {
						return fmt.Errorf("key file %s: %w", f, err)
					}
				}
			}
			p, err := fetchProof(cmd.Context(), nodeAddr, topic, seq)
			if err != nil {
				return err
			}
			signers, err := ledger.VerifyProof(p, topic, seq, keys)
			if err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%d: proof from %s DOES NOT VERIFY: %v\n", topic, seq, nodeAddr, err)
				return exitError{code: 1}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"verified": true, "signers": signers, "proof": p})
			}
			body, _, _ := ledger.OpenPinned([]byte(p.Checkpoint), keys)
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%d: OK: item hash %s, published by %s under epoch %d at %s,\n  included in checkpoint size %d root %s (epoch %d by %s), verified signatures: %s\n",
				topic, seq, p.Entry.ItemHash, p.Entry.Publisher, p.Entry.Epoch, p.Entry.At.Format(time.RFC3339Nano),
				body.Size, body.Root, body.Epoch, body.Node, strings.Join(signers, ", "))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&nodeAddr, "node", envOr("BATON_NODE_ADDR", "127.0.0.1:8080"), "node address (host:port or URL)")
	f.StringArrayVar(&keyFiles, "key", nil, "file of pinned note verifier keys (repeatable)")
	f.BoolVar(&asJSON, "json", false, "print the verified proof as JSON")
	return cmd
}

func fetchProof(ctx context.Context, addr, topic string, seq uint64) (ledger.Proof, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u := strings.TrimSuffix(base, "/") + "/v1/topics/" + url.PathEscape(topic) + "/items/" + strconv.FormatUint(seq, 10) + "/proof"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodGet, u, nil)
	if err != nil {
		return ledger.Proof{}, fmt.Errorf("fetch proof: %w", err)
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		return ledger.Proof{}, fmt.Errorf("fetch proof: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return ledger.Proof{}, fmt.Errorf("fetch proof: %w", err)
	}
	if resp.StatusCode != nethttp.StatusOK {
		var er wire.ErrorResponse
		if json.Unmarshal(b, &er) == nil && er.Error != nil {
			return ledger.Proof{}, fmt.Errorf("fetch proof of %s/%d from %s: %w", topic, seq, addr, er.Error)
		}
		return ledger.Proof{}, fmt.Errorf("fetch proof of %s/%d from %s: HTTP %d", topic, seq, addr, resp.StatusCode)
	}
	var p ledger.Proof
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("fetch proof: bad response: %w", err)
	}
	return p, nil
}

func newLedgerKeys() *cobra.Command {
	var store string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Print the note verifier key of every node key registered in the store",
		Long: `Print one note verifier key per line for every (node, key) registered in the
store, for pinning with 'baton ledger prove --key'. Pin keys you obtained
out of band (each node writes its own to data-dir/node.pub) where the store
itself is not trusted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStore(cmd.Context(), store)
			if err != nil {
				return err
			}
			defer st.Close()
			nks, err := st.NodeKeys(cmd.Context())
			if err != nil {
				return err
			}
			for _, nk := range nks {
				k, err := ledger.VerifierKeyOf(nk)
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "# %s: %v\n", nk.Node, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), k)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&store, "store", envOr("BATON_STORE", dial.DefaultURL), "store URL: sqlite://PATH or redis://HOST:PORT/DB")
	return cmd
}
