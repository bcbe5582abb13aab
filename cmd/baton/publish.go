package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/client"
	"github.com/baton-pub/baton/wire"
	"github.com/spf13/cobra"
)

func nodesFlag(cmd *cobra.Command, p *[]string) {
	cmd.Flags().StringSliceVar(p, "node", strings.Split(envOr("BATON_NODES", "127.0.0.1:8080"), ","),
		"node address(es) host:port (http) or https://host:port, comma separated; requests fail over among them")
}

// access is how a command reaches the nodes: the CA that signed their
// certificates, a client certificate, a token (docs/operations.md, TLS).
type access struct {
	tls       client.TLSFiles
	token     string
	tokenFile string
}

func (a *access) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.tls.CAFile, "ca-file", envOr("BATON_CA_FILE", ""), "trust the CAs of this PEM file for https:// nodes (default: the system's)")
	f.StringVar(&a.tls.CertFile, "cert", envOr("BATON_CERT", ""), "present this client certificate (PEM) to nodes run with --tls-client-ca")
	f.StringVar(&a.tls.KeyFile, "key", envOr("BATON_KEY", ""), "the client certificate's private key (PEM)")
	f.StringVar(&a.token, "token", "", "access token sent as a bearer token (default: $BATON_TOKEN; see baton token)")
	f.StringVar(&a.tokenFile, "token-file", envOr("BATON_TOKEN_FILE", ""), "read the access token from this file, and again when a node says it expired (a long subscribe whose token is renewed)")
}

// client returns a client for nodes with these settings.
func (a *access) client(nodes []string) (*client.Client, error) {
	cfg, err := client.LoadTLS(a.tls)
	if err != nil {
		return nil, err
	}
	o := client.Options{TLS: cfg, Token: a.token}
	if a.tokenFile != "" {
		if a.token != "" {
			return nil, fmt.Errorf("--token and --token-file: give one")
		}
		o.TokenSource = func(context.Context) (string, error) {
			b, err := os.ReadFile(a.tokenFile)
			if err != nil {
				return "", fmt.Errorf("read --token-file: %w", err)
			}
			return strings.TrimSpace(string(b)), nil
		}
	}
	if o.Token == "" && o.TokenSource == nil {
		// Not the flag's default: --help would print it.
		o.Token = os.Getenv("BATON_TOKEN")
	}
	return client.New(nodes, o)
}

func newPublish() *cobra.Command {
	var nodes []string
	var acc access
	var id, value, msgID string
	cmd := &cobra.Command{
		Use:   "publish TOPIC [--id ID --value JSON | < updates.jsonl]",
		Short: "Publish updates to a topic",
		Long: `Publish one update (--id and --value), or read updates from standard input,
one JSON object {"id": ..., "value": ..., "msg_id": ...} per line, sent as
one atomic batch. Prints the receipts (seq and hash) as JSON lines.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			topic := args[0]
			if err := baton.ValidTopic(topic); err != nil {
				return err
			}
			var updates []baton.Update
			if id != "" || value != "" {
				if id == "" || value == "" {
					return fmt.Errorf("publish: --id and --value go together")
				}
				if !json.Valid([]byte(value)) {
					return fmt.Errorf("publish: --value %q is not valid JSON (quote strings: '\"text\"')", value)
				}
				updates = append(updates, baton.Update{ID: id, Value: json.RawMessage(value), MsgID: msgID})
			} else {
				var err error
				if updates, err = readUpdates(cmd.InOrStdin()); err != nil {
					return err
				}
			}
			c, err := acc.client(nodes)
			if err != nil {
				return err
			}
			rs, err := c.Publish(cmd.Context(), topic, updates)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			for _, r := range rs {
				enc.Encode(r)
			}
			return nil
		},
	}
	nodesFlag(cmd, &nodes)
	acc.flags(cmd)
	cmd.Flags().StringVar(&id, "id", "", "data id")
	cmd.Flags().StringVar(&value, "value", "", "value (JSON)")
	cmd.Flags().StringVar(&msgID, "msg-id", "", "message id for idempotent retries (default: made up)")
	return cmd
}

func readUpdates(r io.Reader) ([]baton.Update, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []baton.Update
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var u baton.Update
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&u); err != nil {
			return nil, fmt.Errorf("publish: line %d: %v", n, err)
		}
		if _, err := baton.Normalize(u); err != nil {
			return nil, fmt.Errorf("publish: line %d: %w", n, err)
		}
		out = append(out, u)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("publish: read input: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("publish: no updates on standard input (or give --id and --value)")
	}
	return out, nil
}

func newSubscribe() *cobra.Command {
	var nodes []string
	var acc access
	var after uint64
	var count int
	cmd := &cobra.Command{
		Use:   "subscribe TOPIC",
		Short: "Stream a topic's published items as JSON lines, resuming across failures",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := baton.ValidTopic(args[0]); err != nil {
				return err
			}
			c, err := acc.client(nodes)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			n := 0
			errDone := fmt.Errorf("done")
			err = c.Subscribe(cmd.Context(), args[0], after, func(e client.Event) error {
				if e.Type == wire.EventReset {
					fmt.Fprintf(os.Stderr, "baton: reset: position no longer kept; continuing from %d\n", e.Earliest)
					return nil
				}
				enc.Encode(e.Item)
				n++
				if count > 0 && n >= count {
					return errDone
				}
				return nil
			})
			if err == errDone {
				return nil
			}
			return err
		},
	}
	nodesFlag(cmd, &nodes)
	acc.flags(cmd)
	cmd.Flags().Uint64Var(&after, "after", 0, "start after this seq")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many items (0: never)")
	return cmd
}
