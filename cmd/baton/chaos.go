package main

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/nemesis"
	"github.com/spf13/cobra"
)

// chaosConfig is `baton chaos`'s configuration.
type chaosConfig struct {
	Store     string
	Nodes     int
	Duration  time.Duration
	Seed      uint64
	Topics    int
	Sources   int
	Terminals int
	Rate      int
	MaxBatch  int
	Resend    float64
	Interval  time.Duration
	LeaseTTL  time.Duration
	// Retain, if positive, is the servers' --retain: published items kept
	// per topic. A small one makes terminals that fall behind get resets.
	Retain uint64
	Faults []string
	JSON   bool
	Keep   bool
	// Sabotage records one delivery that no source sent, after a gap:
	// the checker must fail the run (tests of the harness itself).
	Sabotage bool
	// Drain bounds the wait, after the run, for terminals to receive
	// every acknowledged item.
	Drain time.Duration
}

// Validate names the first bad field.
func (c *chaosConfig) Validate() error {
	switch {
	case c.Nodes < 2 || c.Nodes > 9:
		return baton.Invalidf("--nodes", "%d out of range [2, 9]", c.Nodes)
	case c.Duration < time.Second || c.Duration > 24*time.Hour:
		return baton.Invalidf("--duration", "%v out of range [1s, 24h]", c.Duration)
	case c.Topics < 1 || c.Topics > 100:
		return baton.Invalidf("--topics", "%d out of range [1, 100]", c.Topics)
	case c.Sources < 1 || c.Sources > 20:
		return baton.Invalidf("--sources", "%d out of range [1, 20]", c.Sources)
	case c.Terminals < 1 || c.Terminals > 50:
		return baton.Invalidf("--terminals", "%d out of range [1, 50]", c.Terminals)
	case c.Rate < 1 || c.Rate > 1000:
		return baton.Invalidf("--rate", "%d out of range [1, 1000]", c.Rate)
	case c.MaxBatch < 1 || c.MaxBatch > 100:
		return baton.Invalidf("--max-batch", "%d out of range [1, 100]", c.MaxBatch)
	case c.Resend < 0 || c.Resend > 1:
		return baton.Invalidf("--resend", "%v out of range [0, 1]", c.Resend)
	case c.Interval < 50*time.Millisecond:
		return baton.Invalidf("--interval", "%v is below 50ms", c.Interval)
	case c.LeaseTTL < 100*time.Millisecond || c.LeaseTTL > time.Minute:
		return baton.Invalidf("--lease-ttl", "%v out of range [100ms, 1m]", c.LeaseTTL)
	case c.Drain < time.Second:
		return baton.Invalidf("--drain", "%v is below 1s", c.Drain)
	}
	for _, f := range c.Faults {
		if f == "all" {
			continue
		}
		ok := false
		for _, k := range nemesis.AllKinds {
			ok = ok || string(k) == f
		}
		if !ok {
			return baton.Invalidf("--faults", "unknown fault %q (want all or some of %s)", f, kindList())
		}
	}
	return nil
}

func kindList() string {
	s := make([]string, len(nemesis.AllKinds))
	for i, k := range nemesis.AllKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

func newChaos() *cobra.Command {
	var c chaosConfig
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

Faults: ` + kindList() + `.
On SQLite there is no partition (one file on one machine) and no store restart.

Replay a run with the same flags and --seed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("seed") {
				c.Seed = uint64(time.Now().UnixNano() % 1_000_000_000)
			}
			if err := c.Validate(); err != nil {
				return err
			}
			progress := io.Writer(cmd.ErrOrStderr())
			if !c.JSON {
				progress = cmd.OutOrStdout()
			}
			rep, err := runChaos(cmd.Context(), c, progress)
			if err != nil {
				return err
			}
			if c.JSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				rep.print(cmd.OutOrStdout())
			}
			if !rep.OK {
				return exitError{code: 1}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Store, "store", os.Getenv("BATON_STORE"), "store: sqlite (a fresh temporary file, the default), sqlite://PATH, redis (start our own redis-server), or redis://HOST:PORT/DB (an existing one)")
	f.IntVar(&c.Nodes, "nodes", 3, "servers to run")
	f.DurationVar(&c.Duration, "duration", 5*time.Minute, "how long to inject faults")
	f.Uint64Var(&c.Seed, "seed", 0, "seed of the fault schedule and the workload (default: from the clock; printed)")
	f.IntVar(&c.Topics, "topics", 3, "topics")
	f.IntVar(&c.Sources, "sources", 2, "sources per topic")
	f.IntVar(&c.Terminals, "terminals", 3, "terminals per topic")
	f.IntVar(&c.Rate, "rate", 20, "requests per second per source")
	f.IntVar(&c.MaxBatch, "max-batch", 3, "each request carries 1 to this many updates (an atomic batch)")
	f.Float64Var(&c.Resend, "resend", 0.05, "probability that a source sends an acknowledged request again, as if the acknowledgement was lost")
	f.DurationVar(&c.Interval, "interval", time.Second, "mean time between fault starts")
	f.DurationVar(&c.LeaseTTL, "lease-ttl", time.Second, "publish lease TTL of the servers")
	f.Uint64Var(&c.Retain, "retain", 0, "published items the servers keep per topic (0: their default); a small value trims under the terminals' feet")
	f.StringSliceVar(&c.Faults, "faults", []string{"all"}, "faults to inject: all, or a list of "+kindList())
	f.DurationVar(&c.Drain, "drain", 60*time.Second, "after the run, how long terminals may take to receive every acknowledged item")
	f.BoolVar(&c.JSON, "json", false, "print the report as JSON (progress goes to stderr)")
	f.BoolVar(&c.Sabotage, "sabotage", false, "record a bogus delivery, to see the checker fail the run")
	_ = f.MarkHidden("sabotage")
	f.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (logs, database) even when the run passes")
	return cmd
}
