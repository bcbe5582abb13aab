// Package bench measures Baton on real `baton serve` processes and, in the
// same run, the ceiling the machine allows for each figure: raw pipelined
// XADD or raw batched SQLite inserts with Baton's schema for ingest, and a
// minimal SSE broadcaster (not Baton) for fan-out. Machines are shared and
// noisy: a ratio measured in one run holds, an absolute figure does not.
//
// Scenarios (each runnable alone, see Config.Scenarios):
//
//   - ingest: acknowledged (durable) items/s from concurrent HTTP sources,
//     closed loop, for batches of 1, 10 and 100 items, and the rate at which
//     they reach a terminal;
//   - latency: open loop at fixed rates, latency from each item's intended
//     send time to its arrival at each of 100 terminals (no coordinated
//     omission), in an HDR histogram;
//   - fanout: 1k and 10k SSE terminals on one node, once with each of its
//     stream writers (serve --sse-writer pool and goroutine): the highest
//     rate of deliveries with p99 under 100 ms, and RSS per idle
//     connection;
//   - handover: K faults of each kind (SIGKILL, SIGSTOP past the TTL,
//     SIGTERM) of the active publisher, timed from the signal until a
//     terminal receives the successor's first item; and spurious hand-overs
//     (release records with no fault injected) under full load at the
//     configured TTL and at 1s;
//   - topics: per topic count (1,000 and 10,000), 3 nodes and one item
//     published to each topic: the time until every topic has a
//     publisher, idle CPU, store operations and GET /v1/status latency,
//     leases per node, the hand-over of every topic of the busiest node
//     when it is SIGKILLed, and the time until one node more has its share;
//   - ceilings: the raw figures the others are compared with.
//
// Every load loop is bounded in count and in time, and all traffic goes to
// 127.0.0.1.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/baton-pub/baton"
)

// Scenarios in the order they run.
var Scenarios = []string{"ceilings", "ingest", "latency", "fanout", "handover", "topics"}

// Config is one bench run.
type Config struct {
	// Store is "sqlite" (a fresh file per scenario), "redis" (a
	// redis-server started from PATH) or a redis:// URL.
	Store     string
	Scenarios []string
	// Quick shortens every scenario so that a run ends within two minutes.
	Quick bool
	// Out is where the report (JSON, Markdown) and the pictures go; "" for
	// none.
	Out string
	// Exe is the baton binary to run as `serve`; "" means this executable.
	Exe string
	// LeaseTTL is the nodes' lease TTL (default 2s, the serve default).
	LeaseTTL time.Duration
	// Nodes is the cluster size of the ingest, latency and hand-over
	// scenarios.
	Nodes int
	// ItemSize is the size of each item's value in bytes.
	ItemSize int
	// Sources is the number of concurrent HTTP sources of the ingest
	// scenario (and of the raw ceilings).
	Sources int
	// Faults is the number of hand-overs per fault kind.
	Faults int
	// Topics are the topic counts of the topics scenario, each on a fresh
	// cluster (default 1,000 and 10,000; quick 200).
	Topics []int
	// Keep keeps the scratch directory (logs, databases).
	Keep bool
	// TLS runs the nodes over HTTPS, with a CA and certificates made in
	// the scratch directory that the bench's clients trust.
	TLS bool
	// Spread makes the sources of ingest and latency keep to the node each
	// was given, ignoring the holder hint (wire.HolderHeader) that they
	// follow otherwise, as client.Client does: plain HTTP sources behind a
	// load balancer.
	Spread bool
	// NoPeerWatch runs the nodes with --peer-watch=false: a crashed node's
	// leases then end only when they lapse, as a hung one's do.
	NoPeerWatch bool
	// Command is the command line, for the report.
	Command string
	// Peers are the systems measured beside Baton in the same run (Peers:
	// nats, nats-r3, centrifugo, centrifugo-3), on the scenarios that apply to them
	// (peerRuns).
	Peers []string
	// Runs is how many times the whole bench runs, each on fresh servers;
	// above 1 the report adds every figure's median (runs.go). Default 1.
	Runs int
}

// Validate fills defaults and names the first bad field.
func (c *Config) Validate() error {
	if len(c.Scenarios) == 0 {
		c.Scenarios = []string{"all"}
	}
	var sc []string
	for _, s := range c.Scenarios {
		for _, p := range strings.Split(s, ",") {
			p = strings.TrimSpace(p)
			switch {
			case p == "all":
				sc = append(sc, Scenarios...)
			case slices.Contains(Scenarios, p):
				sc = append(sc, p)
			case p == "":
			default:
				return baton.Invalidf("--scenario", "unknown scenario %q (want %s or all)", p, strings.Join(Scenarios, ","))
			}
		}
	}
	c.Scenarios = nil
	for _, s := range Scenarios { // canonical order, no repeats
		if slices.Contains(sc, s) {
			c.Scenarios = append(c.Scenarios, s)
		}
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 2 * time.Second
	}
	if c.LeaseTTL < 100*time.Millisecond || c.LeaseTTL > time.Minute {
		return baton.Invalidf("--lease-ttl", "%v out of range [100ms, 1m]", c.LeaseTTL)
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.Nodes < 1 || c.Nodes > 9 {
		return baton.Invalidf("--nodes", "%d out of range [1, 9]", c.Nodes)
	}
	if c.Nodes < 2 && c.has("handover") {
		return baton.Invalidf("--nodes", "the handover scenario needs at least 2")
	}
	if c.ItemSize == 0 {
		c.ItemSize = 128
	}
	if c.ItemSize < valueOverhead || c.ItemSize > 64<<10 {
		return baton.Invalidf("--item-size", "%d out of range [%d, 65536]", c.ItemSize, valueOverhead)
	}
	if c.Sources == 0 {
		c.Sources = 16
		if c.Quick {
			c.Sources = 8
		}
	}
	if c.Sources < 1 || c.Sources > 256 {
		return baton.Invalidf("--sources", "%d out of range [1, 256]", c.Sources)
	}
	if c.Faults == 0 {
		c.Faults = 10
		if c.Quick {
			c.Faults = 2
		}
	}
	if c.Faults < 1 || c.Faults > 100 {
		return baton.Invalidf("--faults", "%d out of range [1, 100]", c.Faults)
	}
	if len(c.Topics) == 0 {
		c.Topics = []int{1000, 10000}
		if c.Quick {
			c.Topics = []int{200}
		}
	}
	for _, n := range c.Topics {
		if n < 1 || n > 100000 {
			return baton.Invalidf("--topics", "%d out of range [1, 100000]", n)
		}
	}
	if c.Runs == 0 {
		c.Runs = 1
	}
	if c.Runs < 1 || c.Runs > 9 {
		return baton.Invalidf("--runs", "%d out of range [1, 9]", c.Runs)
	}
	if c.Nodes < 2 && c.has("topics") {
		return baton.Invalidf("--nodes", "the topics scenario needs at least 2")
	}
	var err error
	if c.Peers, err = validatePeers(c.Peers); err != nil {
		return err
	}
	for _, peer := range c.Peers {
		if !slices.ContainsFunc(c.Scenarios, func(s string) bool { return peerRuns(peer, s) }) {
			return baton.Invalidf("--peers", "none of the scenarios %s applies to peer %s (want some of %s)", strings.Join(c.Scenarios, ","), peer, strings.Join(peerScenarios, ","))
		}
	}
	return nil
}

func (c *Config) has(s string) bool { return slices.Contains(c.Scenarios, s) }

// plan holds the durations and sizes a run uses, full or quick.
type plan struct {
	ingestDur   time.Duration
	latencyDur  time.Duration
	rates       []float64
	terminals   int
	fanoutSizes []int
	fanoutStep  time.Duration
	fanoutRamp  []float64 // deliveries/s tried, in order
	soakDur     time.Duration
	grace       time.Duration
	// The topics scenario: the most time the settle phase before the idle
	// window waits for the witnesses to catch up (the checkpoints signed a
	// second after the last item, and their witnessing: every witness
	// mirrors, checks and cosigns every new topic, and follows it up 1, 2,
	// 4 and 8 s later, see ledger.Witness; at 10,000 new topics that takes
	// tens of seconds; waitWitnesses), the window, the GET
	// /v1/status requests timed, the deadline of creating every topic and
	// that of each later phase (every topic published, the kill's items,
	// the balance after a join).
	topicsSettle     time.Duration
	topicsIdle       time.Duration
	topicsStatusReqs int
	topicsCreate     time.Duration
	topicsDeadline   time.Duration
}

func planFor(quick bool) plan {
	if quick {
		return plan{
			ingestDur: 1500 * time.Millisecond, latencyDur: 1500 * time.Millisecond,
			rates: []float64{1000, 10000, 50000}, terminals: 100,
			fanoutSizes: []int{1000}, fanoutStep: 1500 * time.Millisecond,
			fanoutRamp: []float64{5e3, 20e3, 100e3, 400e3},
			soakDur:    3 * time.Second, grace: 3 * time.Second,
			topicsSettle: 20 * time.Second, topicsIdle: 3 * time.Second, topicsStatusReqs: 10, topicsCreate: 60 * time.Second, topicsDeadline: 20 * time.Second,
		}
	}
	return plan{
		ingestDur: 5 * time.Second, latencyDur: 5 * time.Second,
		rates: []float64{1000, 10000, 50000}, terminals: 100,
		fanoutSizes: []int{1000, 10000}, fanoutStep: 3 * time.Second,
		fanoutRamp: []float64{5e3, 10e3, 25e3, 50e3, 100e3, 200e3, 300e3, 400e3, 600e3, 800e3, 1.2e6, 1.6e6},
		soakDur:    10 * time.Second, grace: 5 * time.Second,
		topicsSettle: 120 * time.Second, topicsIdle: 10 * time.Second, topicsStatusReqs: 50, topicsCreate: 300 * time.Second, topicsDeadline: 60 * time.Second,
	}
}

// Run runs the configured scenarios c.Runs times and returns the report
// (the last run's, with the medians of all when there are several);
// progress goes to log. A scenario that fails is recorded in the report and
// the run goes on with the next.
func Run(ctx context.Context, c Config, log io.Writer) (*Report, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	var runs []*Report
	for i := range c.Runs {
		if c.Runs > 1 {
			fmt.Fprintf(log, "\n== run %d of %d\n", i+1, c.Runs)
		}
		r, err := runOnce(ctx, c, log)
		if err != nil {
			return r, err
		}
		runs = append(runs, r)
	}
	r := runs[len(runs)-1]
	if len(runs) > 1 {
		r.Earlier = runs[:len(runs)-1]
		r.Medians = mediansOf(runs)
		r.Seconds = time.Since(start).Seconds()
	}
	if c.Out != "" {
		if err := r.write(c.Out); err != nil {
			return r, err
		}
		fmt.Fprintf(log, "report written to %s\n", c.Out)
	}
	return r, nil
}

// runOnce is one run of every configured scenario on fresh servers.
func runOnce(ctx context.Context, c Config, log io.Writer) (*Report, error) {
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(log, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	if lim, err := raiseNoFile(); err != nil {
		logf("raise the open-file limit: %v", err)
	} else {
		logf("open-file limit %d", lim)
	}
	e, err := newEnv(ctx, c, logf)
	if err != nil {
		return nil, err
	}
	defer e.close()
	stopProfile, err := profileSelf()
	if err != nil {
		return nil, err
	}
	defer stopProfile()
	p := planFor(c.Quick)
	host, _ := os.Hostname()
	r := &Report{
		Command: c.Command, Engine: e.engine, SQLiteSync: e.sync, Quick: c.Quick, TLS: c.TLS, Started: start.UTC(),
		Host:       Host{Name: host, CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()},
		LeaseTTLms: float64(c.LeaseTTL.Milliseconds()), ItemSize: c.ItemSize, Scenarios: c.Scenarios,
	}
	if c.Keep {
		r.Dir = e.dir
	}
	logf("bench on %s: %s (item value %d bytes, lease TTL %v, %d CPUs)", e.engine, strings.Join(c.Scenarios, ", "), c.ItemSize, c.LeaseTTL, runtime.NumCPU())
	step := func(name string, f func() error) {
		if ctx.Err() != nil {
			return
		}
		t0 := time.Now()
		logf("== %s", name)
		if err := f(); err != nil {
			logf("%s FAILED: %v", name, err)
			r.Failures = append(r.Failures, fmt.Sprintf("%s: %v", name, err))
			return
		}
		logf("== %s done in %.1fs", name, time.Since(t0).Seconds())
	}
	if c.has("ceilings") {
		step("ceilings", func() error { return runCeilings(ctx, e, p, r) })
	}
	// Each peer runs a scenario right after Baton's (peer.go).
	peers := func(sc string) {
		for _, peer := range c.Peers {
			if !peerRuns(peer, sc) {
				continue
			}
			step("peer "+peer+" "+sc, func() error { return runPeer(ctx, e, r, peer, sc) })
		}
	}
	if c.has("ingest") {
		step("ingest", func() error { return runIngest(ctx, e, p, r) })
		peers("ingest")
	}
	if c.has("latency") {
		step("latency", func() error { return runLatency(ctx, e, p, r) })
		peers("latency")
	}
	if c.has("fanout") {
		step("fanout", func() error { return runFanout(ctx, e, p, r) })
		peers("fanout")
	}
	if c.has("handover") {
		step("handover", func() error { return runHandover(ctx, e, p, r) })
		peers("handover")
	}
	if c.has("topics") {
		step("topics", func() error { return runTopics(ctx, e, p, r) })
	}
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("bench: %w", err)
	}
	if e.keep {
		r.Dir = e.dir // kept for a figure far off (env.keepFor)
	}
	r.finish()
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}
