package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/baton-pub/baton/auth"
)

func newToken() *cobra.Command {
	var key, sub, iss, aud string
	var ttl time.Duration
	var rights auth.Rights
	cmd := &cobra.Command{
		Use:   "token --key FILE [--publish PATTERN]... [--subscribe PATTERN]... [--admin] [--ttl 1h]",
		Short: "Mint an access token",
		Long: `Mint a JSON Web Token that a node started with --jwt-key verifies, and print
it. --key is an HMAC secret file (HS256) or a PEM private key (RS256, ES256,
ES384, ES512 or EdDSA by its type). Patterns: * (every topic), NAME, or
NAME.* (every topic whose name starts with NAME.). See docs/security.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if key == "" {
				return fmt.Errorf("token: --key is required")
			}
			if len(rights.Publish)+len(rights.Subscribe) == 0 && !rights.Admin {
				return fmt.Errorf("token: grants nothing (give --publish, --subscribe or --admin)")
			}
			tok, err := auth.Mint(key, auth.Token{Subject: sub, Issuer: iss, Audience: aud, TTL: ttl, Rights: rights})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&key, "key", "", "signing key file: HMAC secret or PEM private key")
	f.StringArrayVar(&rights.Publish, "publish", nil, "topic pattern the token may publish to (repeatable)")
	f.StringArrayVar(&rights.Subscribe, "subscribe", nil, "topic pattern the token may subscribe to (repeatable)")
	f.BoolVar(&rights.Admin, "admin", false, "grant the admin routes (status, locks, cursors, hand-overs, ledger)")
	f.StringVar(&sub, "sub", "", "subject: who the token is for (used for per-client limits and logs)")
	f.StringVar(&iss, "iss", "", "issuer (checked when the node sets --jwt-issuer)")
	f.StringVar(&aud, "aud", "", "audience (checked when the node sets --jwt-audience)")
	f.DurationVar(&ttl, "ttl", time.Hour, "time to live")
	return cmd
}
