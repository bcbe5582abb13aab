package main

import (
	"os"
	"time"

	"github.com/baton-pub/baton/demo"
	"github.com/spf13/cobra"
)

func newDemo() *cobra.Command {
	var c demo.Config
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run 3 real servers, a source and terminals; kill and stop publishers; report",
		Long: `demo starts real 'baton serve' processes on one store, a source publishing at a
steady rate with retries, and terminals connected to different nodes. It
SIGKILLs the active publisher mid-stream, restarts it as a standby, later
SIGTERMs the next active publisher, and ends with a report: items acked,
delivered per terminal, lost, duplicated, out of order, and each hand-over
with its reason and duration. It exits non-zero if anything was lost,
duplicated or reordered.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.Validate(); err != nil {
				return err
			}
			rep, err := demo.Run(cmd.Context(), c, progressTo(cmd, jsonOut))
			if err != nil {
				return err
			}
			return writeReport(cmd, jsonOut, rep, rep.OK)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Store, "store", os.Getenv("BATON_STORE"), "store URL (default: a fresh temporary SQLite file)")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON (progress goes to stderr)")
	f.IntVar(&c.Nodes, "nodes", 3, "servers to run")
	f.IntVar(&c.Terminals, "terminals", 3, "terminals, spread over the servers")
	f.IntVar(&c.Rate, "rate", 200, "items per second from the source")
	f.DurationVar(&c.LeaseTTL, "lease-ttl", 2*time.Second, "publish lease TTL of the servers")
	f.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (logs, database)")
	f.BoolVar(&c.TLS, "tls", false, "run the servers over HTTPS with a CA and certificates made in the temporary directory")
	return cmd
}
