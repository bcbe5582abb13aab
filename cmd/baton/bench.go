package main

import (
	"os"
	"strings"

	"github.com/baton-pub/baton/bench"
	"github.com/spf13/cobra"
)

func newBench() *cobra.Command {
	var c bench.Config
	peerWatch := true
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput, latency, fan-out, memory and hand-over time against raw ceilings",
		Long: `bench starts real 'baton serve' processes on a fresh store and measures:

  ingest    durable acknowledged items/s from concurrent HTTP sources,
            batches of 1, 10 and 100, and the rate they reach a terminal
  latency   open loop at 1k, 10k and 50k items/s: latency from each item's
            intended send time to each of 100 terminals (HDR histogram);
            a rate the machine cannot sustain is reported as such
  fanout    1k and 10k SSE terminals on one node, with each stream writer
            (--sse-writer pool, goroutine): highest deliveries/s with p99
            under 100 ms, and memory per idle connection
  handover  SIGKILL, SIGSTOP past the TTL and SIGTERM of the active
            publisher, each K times: time until the successor's first item
            reaches a terminal; spurious hand-overs under full load
  topics    3 nodes and one item published to each of N topics (--topics,
            default 1,000 and 10,000; quick 200): time until every topic
            has a publisher, idle CPU per node, store operations/s and
            GET /v1/status latency while idle, leases per node, SIGKILL of
            the busiest node (time until each of its topics publishes its
            next item), and the time until a node that joins has its share
  ceilings  what the machine allows, in the same run: pipelined XADD or
            batched SQLite inserts with Baton's schema, and a minimal SSE
            broadcaster

Every Baton figure is printed beside its ceiling with the ratio: shared
machines are noisy, and the ratio is what holds. --peers nats,centrifugo
runs the ingest, latency and fanout scenarios (and NATS's leader
fail-over for handover) on NATS JetStream and Centrifugo in the same run,
each figure beside Baton's; nats-r3 runs ingest and latency on three
nats-servers with R3 streams, NATS as one runs it for high availability,
and centrifugo-3 on three Centrifugo nodes sharing one Redis (the peers'
driver, bench/peers, is built with the Go toolchain on first use). --out writes report.json,
report.md and PNG pictures.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.Command = "baton " + strings.Join(os.Args[1:], " ")
			c.NoPeerWatch = !peerWatch
			rep, err := bench.Run(cmd.Context(), c, progressTo(cmd, jsonOut))
			if err != nil {
				return err
			}
			return writeReport(cmd, jsonOut, rep, rep.OK())
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Store, "store", "sqlite", "store: sqlite (fresh files; sqlite?sync=normal: without an fsync per transaction, as a peer that does not sync every write), redis (a redis-server started from PATH) or a redis:// URL")
	f.StringSliceVar(&c.Scenarios, "scenario", []string{"all"}, "scenarios: ingest,latency,fanout,handover,topics,ceilings or all")
	f.BoolVar(&c.Quick, "quick", false, "short runs (under two minutes in all): checks that everything works, not how fast")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON (progress goes to stderr)")
	f.StringVar(&c.Out, "out", "", "directory for report.json, report.md and the pictures")
	f.DurationVar(&c.LeaseTTL, "lease-ttl", 0, "lease TTL of the servers (default 2s, as serve)")
	f.IntVar(&c.Nodes, "nodes", 0, "servers in the ingest, latency and hand-over clusters (default 3)")
	f.IntVar(&c.ItemSize, "item-size", 0, "bytes of each item's value (default 128)")
	f.IntVar(&c.Sources, "sources", 0, "concurrent HTTP sources for ingest and the ceilings (default 16, quick 8)")
	f.IntVar(&c.Faults, "faults", 0, "hand-overs per fault kind (default 10, quick 2)")
	f.IntSliceVar(&c.Topics, "topics", nil, "topic counts of the topics scenario, each on a fresh cluster (default 1000,10000; quick 200)")
	f.BoolVar(&c.Keep, "keep", false, "keep the scratch directory (logs, databases)")
	f.StringSliceVar(&c.Peers, "peers", nil, "peers to measure beside Baton in the same run: nats, nats-r3, centrifugo, centrifugo-3 (built from source with the Go toolchain; see docs/benchmarks.md)")
	f.BoolVar(&peerWatch, "peer-watch", true, "run the nodes with their peer watch (a crashed node's leases end when its address refuses connections); false: they end when they lapse, as a hung node's do")
	f.IntVar(&c.Runs, "runs", 1, "run the whole bench this many times, each on fresh servers, and report every figure's median and each run's ratios to the peers")
	f.BoolVar(&c.Spread, "spread", false, "the ingest and latency sources keep to the node each was given (plain HTTP clients behind a load balancer) instead of following the Baton-Holder hint to the topic's lease holder, as the Go client does")
	f.BoolVar(&c.TLS, "tls", false, "run the nodes over HTTPS with a CA and certificates made in the scratch directory (default: plain HTTP)")
	cmd.AddCommand(newBenchRawSSE())
	return cmd
}

// newBenchRawSSE is the fan-out ceiling the bench runs as a child process:
// a minimal SSE broadcaster, not Baton.
func newBenchRawSSE() *cobra.Command {
	var listen, ready string
	cmd := &cobra.Command{
		Use:    "raw-sse",
		Short:  "the bench's minimal SSE broadcaster (fan-out ceiling)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.ServeRawSSE(cmd.Context(), listen, ready)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "listen address")
	cmd.Flags().StringVar(&ready, "ready-file", "", "write {addr} as JSON here once serving")
	return cmd
}
