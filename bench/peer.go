package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// The peers: systems a user would pick instead of Baton, measured by a
// driver program of the separate module bench/peers (so that their code
// stays out of the baton binary) with this package's load generator, so
// that item size, terminals and open-loop schedule are Baton's. The bench
// builds the driver with `go build`, writes a PeerRequest as JSON to its
// standard input and reads a PeerResult as JSON from its standard output;
// progress lines come on its standard error (docs/benchmarks.md "Side by
// side with NATS JetStream and Centrifugo").

// Peers are the peers `baton bench --peers` knows: nats is one
// nats-server (R1 streams), nats-r3 three in a cluster (R3 streams, NATS
// run for high availability as Baton's three nodes are); centrifugo is one
// Centrifugo node on Redis, centrifugo-3 three on one Redis (the same).
var Peers = []string{"nats", "nats-r3", "centrifugo", "centrifugo-3"}

// peerScenarios are the scenarios a peer runs, when the run has them:
// "handover" is the peer's leader fail-over, where it has one.
var peerScenarios = []string{"ingest", "latency", "fanout", "handover"}

// peerRuns reports whether peer runs scenario: nats-r3 and centrifugo-3
// run ingest and latency only (the fan-out to one node's terminals would be
// nats's and centrifugo's again, nats measures the R3 leader's fail-over,
// and Centrifugo has none).
func peerRuns(peer, scenario string) bool {
	if peer == "nats-r3" || peer == "centrifugo-3" {
		return scenario == "ingest" || scenario == "latency"
	}
	return slices.Contains(peerScenarios, scenario)
}

// PeerRequest is what the bench asks a peer driver to measure.
type PeerRequest struct {
	Peer      string   `json:"peer"`
	Scenarios []string `json:"scenarios"`
	Quick     bool     `json:"quick"`
	ItemSize  int      `json:"item_size"`
	Sources   int      `json:"sources"`
	Faults    int      `json:"faults"`
	// Dir is a scratch directory for the peer's servers (their stores,
	// config files and logs).
	Dir string `json:"dir"`
	// Bins are the server binaries the bench built or found, by name:
	// "nats-server", "centrifugo", "redis-server".
	Bins map[string]string `json:"bins"`
}

// PeerResult is a driver's answer: the scenarios' rows, in the types
// Baton's rows have, and how the peer was run.
type PeerResult struct {
	Peer    string `json:"peer"`
	Version string `json:"version"`
	// Config is how each server ran: command lines and config files, so
	// that anyone can dispute it.
	Config []string `json:"config"`
	// Notes say what the peer's figures are (which kind of terminal, what
	// it does not have).
	Notes   []string     `json:"notes,omitempty"`
	Ingest  []IngestRow  `json:"ingest,omitempty"`
	Latency []LatencyRow `json:"latency,omitempty"`
	// LatencyCurves are the latency rows' percentile curves, for the
	// plots (Percentiles keeps its curve out of JSON).
	LatencyCurves [][]CurvePoint    `json:"latency_curves,omitempty"`
	Fanout        []FanoutRow       `json:"fanout,omitempty"`
	Failover      *PeerFailover     `json:"failover,omitempty"`
	Failures      []string          `json:"failures,omitempty"`
	Extra         map[string]string `json:"extra,omitempty"`
}

// PeerFailover is a peer's leader fail-over: the time from killing the
// leader until a terminal receives an item accepted by its successor, as
// Baton's hand-over after SIGKILL is timed.
type PeerFailover struct {
	Kind   string      `json:"kind"`
	Nodes  int         `json:"nodes"`
	Millis []float64   `json:"millis"`
	Stats  Percentiles `json:"stats"`
	Note   string      `json:"note,omitempty"`
	// Config is the servers' configuration, when it differs from the
	// other scenarios'.
	Config string `json:"config,omitempty"`
}

// FreePort is a free TCP port on 127.0.0.1, for a driver's servers.
func FreePort() (int, error) { return freePort() }

// StreamSSE reads the Server-Sent Events of base+path as the bench's
// terminals read Baton's (stream), for a peer that speaks SSE: connected
// once the first bytes arrive, fn for each event's data.
func StreamSSE(ctx context.Context, hc *http.Client, base, path string, connected func(), fn func([]byte)) error {
	return stream(ctx, hc, base, path, 64<<10, nil, connected, fn)
}

// SampleStats summarises a driver's samples in milliseconds.
func SampleStats(ms []float64) Percentiles { return sampleStats(ms) }

// PeerTopic is one topic (a NATS stream, a Centrifugo channel) on a
// peer's servers: the senders to publish with (used by many goroutines at
// once), how terminal i subscribes, and the server process that holds the
// terminals' connections (for memory per idle terminal).
type PeerTopic struct {
	Senders   []Sender
	Subscribe Subscribe
	PID       int
	Close     func()
}

// PeerSystem is a peer's running servers, given by its driver.
type PeerSystem interface {
	// Topic makes a fresh topic for n terminals; fanout asks for the
	// peer's fastest kind of terminal (the fan-out scenario), else the
	// one that resumes (the latency and ingest scenarios). A fan-out topic
	// is on a server started afresh, as Baton's fan-out node is, so that
	// the RSS growth it measures is the terminals' and not heap kept from
	// the scenarios before.
	Topic(ctx context.Context, name string, n int, fanout bool) (*PeerTopic, error)
	// Failover measures the peer's leader fail-over k times; nil with a
	// note when the peer has none.
	Failover(ctx context.Context, k int, pad string) (*PeerFailover, error)
}

// RunPeer runs the requested scenarios on a peer with the bench's load
// generator and fills res; a scenario that fails is recorded in
// res.Failures and the others go on.
func RunPeer(ctx context.Context, req PeerRequest, sys PeerSystem, res *PeerResult, logf func(string, ...any)) {
	p := planFor(req.Quick)
	pad := padFor(req.ItemSize)
	has := func(s string) bool { return slices.Contains(req.Scenarios, s) }
	step := func(name string, f func() error) {
		if ctx.Err() != nil {
			return
		}
		t0 := time.Now()
		logf("== %s %s", req.Peer, name)
		if err := f(); err != nil {
			logf("%s %s FAILED: %v", req.Peer, name, err)
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %v", name, err))
			return
		}
		logf("== %s %s done in %.1fs", req.Peer, name, time.Since(t0).Seconds())
	}
	if has("ingest") {
		step("ingest", func() error {
			for _, b := range ingestBatches {
				t, err := sys.Topic(ctx, "ingest-b"+strconv.Itoa(b), 1, false)
				if err != nil {
					return err
				}
				g := newTerminals(1)
				if err := g.start(ctx, t.Subscribe, 1, 30*time.Second); err != nil {
					t.Close()
					return err
				}
				row, err := ingestWith(ctx, p, t.Senders, g, req.Sources, b, pad)
				g.stop()
				t.Close()
				if err != nil {
					return fmt.Errorf("batch %d: %w", b, err)
				}
				res.Ingest = append(res.Ingest, row)
				logf("%s ingest batch %3d: %9.0f items/s acked, %9.0f items/s to a terminal (request p99 %.1f ms, %d errors)",
					req.Peer, b, row.Acked, row.Delivered, row.Request.P99, row.Errors)
			}
			return nil
		})
	}
	if has("latency") {
		step("latency", func() error {
			for _, rate := range p.rates {
				t, err := sys.Topic(ctx, "latency-"+strconv.Itoa(int(rate)), p.terminals, false)
				if err != nil {
					return err
				}
				g := newTerminals(p.terminals)
				if err := g.start(ctx, t.Subscribe, 50, 30*time.Second); err != nil {
					t.Close()
					return err
				}
				row, err := latencyWith(ctx, p, t.Senders, g, rate, pad)
				g.stop()
				t.Close()
				if err != nil {
					return fmt.Errorf("rate %.0f: %w", rate, err)
				}
				res.Latency = append(res.Latency, row)
				res.LatencyCurves = append(res.LatencyCurves, row.Terminal.Curve)
				verdict := "sustained"
				if !row.Sustained {
					verdict = "NOT SUSTAINED: " + row.Note
				}
				logf("%s latency at %6.0f items/s: terminal p50 %.2f p99 %.2f max %.2f ms; ack p99 %.2f ms; generator %.2f cores; %s",
					req.Peer, rate, row.Terminal.P50, row.Terminal.P99, row.Terminal.Max, row.Ack.P99, row.GenCPU, verdict)
			}
			return nil
		})
	}
	if has("fanout") {
		step("fanout", func() error {
			for _, n := range p.fanoutSizes {
				t, err := sys.Topic(ctx, "fan-"+strconv.Itoa(n), n, true)
				if err != nil {
					return err
				}
				connect := func(ctx context.Context) (*terminals, error) {
					g := newTerminals(n)
					return g, g.start(ctx, t.Subscribe, 200, 60*time.Second)
				}
				row, err := rampOn(ctx, logf, p, FanoutRow{Server: req.Peer, Terminals: n}, t.PID, t.Senders[0], connect, pad)
				t.Close()
				if err != nil {
					return fmt.Errorf("%d terminals: %w", n, err)
				}
				res.Fanout = append(res.Fanout, row)
			}
			return nil
		})
	}
	if has("handover") {
		step("fail-over", func() error {
			fo, err := sys.Failover(ctx, req.Faults, pad)
			res.Failover = fo
			return err
		})
	}
}
