package main

import (
	"os"
	"time"

	"github.com/baton-pub/baton/chaos"
	"github.com/spf13/cobra"
)

func newChaos() *cobra.Command {
	var c chaos.Config
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "chaos",
		Short: "Inject faults into real servers under load and check that no acknowledged item is lost, duplicated or reordered",
		Long: `chaos starts real 'baton serve' processes on a store (and, with --store redis,
its own redis-server with an fsynced append-only file), sources publishing
with message ids and retries, terminals that move between servers and resume,
and a nemesis that, on a schedule drawn from --seed, kills, pauses, stops and
restarts servers, cuts a server off the store (Redis: through a TCP proxy per
server), restarts Redis, and slows terminals down. At the end an independent
checker judges what the sources were told and what the terminals received,
together with the hand-over records, and the report lists every fault, every
hand-over and every anomaly. It exits 1 if anything was lost, duplicated,
reordered, mismatched or published by two holders at once.

Faults: ` + chaos.KindList() + `.
On SQLite there is no partition (one file on one machine) and no store restart.
join starts one more server for a while (balancing must hand it topics) and
stops it with SIGTERM; drain drains a server (POST /v1/drain) and undrains it.

Up to 100 topics, --sources and --terminals are per topic. With more (up to
10,000) they are totals spread over the topics: each source publishes to
every topic in turn, then to topics drawn from the seed; each terminal
follows one topic drawn from the seed. Every topic is read back through the
API at the end, so the checker holds each one to the same guarantees.
--sources x --rate (requests per second in all) is at most 5,000.

Replay a run with the same flags and --seed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("seed") {
				c.Seed = uint64(time.Now().UnixNano() % 1_000_000_000)
			}
			if err := c.Validate(); err != nil {
				return err
			}
			rep, err := chaos.Run(cmd.Context(), c, progressTo(cmd, jsonOut))
			if err != nil {
				return err
			}
			return writeReport(cmd, jsonOut, rep, rep.OK)
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Store, "store", os.Getenv("BATON_STORE"), "store: sqlite (a fresh temporary file, the default), sqlite://PATH, redis (start our own redis-server), or redis://HOST:PORT/DB (an existing one)")
	f.IntVar(&c.Nodes, "nodes", 3, "servers to run")
	f.DurationVar(&c.Duration, "duration", 5*time.Minute, "how long to inject faults")
	f.Uint64Var(&c.Seed, "seed", 0, "seed of the fault schedule and the workload (default: from the clock; printed)")
	f.IntVar(&c.Topics, "topics", 3, "topics (at most 10,000)")
	f.IntVar(&c.Sources, "sources", 2, "sources per topic; in all with more than 100 topics")
	f.IntVar(&c.Terminals, "terminals", 3, "terminals per topic; in all with more than 100 topics")
	f.IntVar(&c.Rate, "rate", 20, "requests per second per source")
	f.IntVar(&c.MaxBatch, "max-batch", 3, "each request carries 1 to this many updates (an atomic batch)")
	f.Float64Var(&c.Resend, "resend", 0.05, "probability that a source sends an acknowledged request again, as if the acknowledgement was lost")
	f.DurationVar(&c.Interval, "interval", time.Second, "mean time between fault starts")
	f.DurationVar(&c.LeaseTTL, "lease-ttl", time.Second, "publish lease TTL of the servers")
	f.Uint64Var(&c.Retain, "retain", 0, "published items the servers keep per topic (0: their default); a small value trims under the terminals' feet, and a retry that comes after its message's first copy was trimmed is appended again (reported, not an anomaly: a msg id is known while its item is kept)")
	f.StringSliceVar(&c.Faults, "faults", []string{"all"}, "faults to inject: all, or a list of "+chaos.KindList())
	f.DurationVar(&c.Drain, "drain", 60*time.Second, "after the run, how long terminals may take to receive every acknowledged item")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON (progress goes to stderr)")
	f.BoolVar(&c.Sabotage, "sabotage", false, "record a bogus delivery, to see the checker fail the run")
	_ = f.MarkHidden("sabotage")
	f.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (logs, database) even when the run passes")
	return cmd
}
