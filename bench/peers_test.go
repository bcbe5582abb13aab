package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/baton-pub/baton"
)

// TestComparePeersOrientsTheRatio: throughput is Baton over the peer,
// latency and memory the peer over Baton, so that above 1 always means
// Baton leads; a figure only one side has gets no ratio.
func TestComparePeersOrientsTheRatio(t *testing.T) {
	r := &Report{
		Ingest: &IngestResult{Rows: []IngestRow{{Batch: 1, Delivered: 1000}, {Batch: 100, Delivered: 50000}}},
		Latency: &LatencyResult{Rows: []LatencyRow{{Rate: 1000, Sustained: true, Terminal: Percentiles{P99: 4}},
			{Rate: 10000, Terminal: Percentiles{P99: 100}}}},
		Fanout: &FanoutResult{Rows: []FanoutRow{
			{Server: "baton", Writer: SSEWriters[0], Terminals: 1000, Best: 600000, IdleKB: 8,
				Steps: []FanoutStep{{Rate: 5, Latency: Percentiles{P99: 10}}}},
			{Server: "baton", Writer: SSEWriters[1], Terminals: 1000, Best: 1, IdleKB: 1000}, // not the default writer: ignored
		}},
		Peers: []PeerResult{{Peer: "nats",
			Ingest:  []IngestRow{{Batch: 1, Delivered: 4000}, {Batch: 100, Delivered: 25000}, {Batch: 10, Delivered: 9}},
			Latency: []LatencyRow{{Rate: 1000, Terminal: Percentiles{P99: 8}}, {Rate: 10000, Terminal: Percentiles{P99: 400}}},
			Fanout: []FanoutRow{{Server: "nats", Terminals: 1000, Best: 300000, IdleKB: 48,
				Steps: []FanoutStep{{Rate: 5, Latency: Percentiles{P99: 5}}}}},
		}},
	}
	got := map[string]PeerCompare{}
	for _, c := range comparePeers(r) {
		got[c.Figure] = c
	}
	want := map[string]float64{
		"ingest to a terminal, batch 1, idempotency on":   0.25, // Baton trails
		"ingest to a terminal, batch 100, idempotency on": 2,
		"ingest to a terminal, batch 10, idempotency on":  0, // Baton did not run batch 10
		"latency p99 at 1000 items/s, 100 terminals":      2,
		"latency p99 at 10000 items/s, 100 terminals":     0, // neither sustained the rate: no ratio
		"fan-out to 1000 terminals, p99 < 100 ms":         2,
		"memory per idle terminal (1000)":                 6,
		"fan-out to 1000 terminals, p99 at 5 items/s":     0.5,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d figures, want %d: %+v", len(got), len(want), got)
	}
	for f, a := range want {
		c, ok := got[f]
		if !ok {
			t.Fatalf("no figure %q in %+v", f, got)
		}
		if c.Advantage != a {
			t.Errorf("%s: advantage %v, want %v", f, c.Advantage, a)
		}
	}
	if n := got["latency p99 at 1000 items/s, 100 terminals"].Note; !strings.Contains(n, "nats did not sustain") {
		t.Errorf("latency note %q does not say the peer missed the rate", n)
	}
	if s := got["ingest to a terminal, batch 1, idempotency on"].advantage(); !strings.Contains(s, "TRAILS") {
		t.Errorf("a ratio below 1 reads %q", s)
	}
}

// TestPeersInTheReport: the side-by-side table and each peer's
// configuration are in the text and Markdown reports.
func TestPeersInTheReport(t *testing.T) {
	r := &Report{Engine: "redis", Ingest: &IngestResult{Rows: []IngestRow{{Batch: 1, Delivered: 1000}}},
		Peers: []PeerResult{{Peer: "centrifugo", Version: "centrifugo v6.9.1", Config: []string{"centrifugo.json:\n{}\n"},
			Notes: []string{"no leader fail-over"}, Ingest: []IngestRow{{Batch: 1, Delivered: 500}}}}}
	r.finish()
	var text, md strings.Builder
	r.Print(&text)
	r.Markdown(&md, nil)
	for _, s := range []string{text.String(), md.String()} {
		for _, want := range []string{"side by side", "centrifugo v6.9.1", "no leader fail-over", "2.00x ahead"} {
			if !strings.Contains(strings.ToLower(s), strings.ToLower(want)) {
				t.Errorf("report lacks %q:\n%s", want, s)
			}
		}
	}
	if !strings.Contains(md.String(), "```\ncentrifugo.json:\n{}\n```") {
		t.Errorf("Markdown lacks the configuration file:\n%s", md.String())
	}
}

// TestUnknownPeer: --peers names the peer it does not know and the ones
// it does, and a run does not start.
func TestUnknownPeer(t *testing.T) {
	c := Config{Peers: []string{"nats, kafka"}}
	err := c.Validate()
	var ie *baton.InvalidError
	if !errors.As(err, &ie) || !strings.Contains(err.Error(), `unknown peer "kafka"`) || !strings.Contains(err.Error(), "nats,nats-r3,centrifugo,centrifugo-3") {
		t.Fatalf("Validate: %v", err)
	}
	c = Config{Peers: []string{"nats"}, Scenarios: []string{"topics"}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "applies to peer nats") {
		t.Fatalf("peers with no scenario of theirs: %v", err)
	}
	// nats-r3 runs ingest and latency only.
	c = Config{Peers: []string{"nats,nats-r3"}, Scenarios: []string{"fanout"}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "applies to peer nats-r3") {
		t.Fatalf("nats-r3 with fan-out only: %v", err)
	}
	if !peerRuns("nats-r3", "latency") || peerRuns("nats-r3", "handover") || !peerRuns("nats", "handover") {
		t.Fatal("peerRuns: nats-r3 runs ingest and latency, nats every peer scenario")
	}
	// So does centrifugo-3.
	c = Config{Peers: []string{"centrifugo-3"}, Scenarios: []string{"fanout", "handover"}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "applies to peer centrifugo-3") {
		t.Fatalf("centrifugo-3 with fan-out and hand-over only: %v", err)
	}
	if !peerRuns("centrifugo-3", "ingest") || peerRuns("centrifugo-3", "fanout") || !peerRuns("centrifugo", "fanout") {
		t.Fatal("peerRuns: centrifugo-3 runs ingest and latency, centrifugo every peer scenario")
	}
	c = Config{Peers: []string{"centrifugo,nats", "nats"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.Peers) != "[centrifugo nats]" {
		t.Fatalf("peers %v, want each once in the order given", c.Peers)
	}
}

// The fake driver: this test binary, run again with BATON_FAKE_DRIVER set
// to what it should do.
func TestMain(m *testing.M) {
	if mode := os.Getenv("BATON_FAKE_DRIVER"); mode != "" {
		os.Exit(fakeDriver(mode))
	}
	os.Exit(m.Run())
}

func fakeDriver(mode string) int {
	var req PeerRequest
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "bad request:", err)
		return 2
	}
	fmt.Fprintf(os.Stderr, "%s: starting\n", req.Peer)
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "cannot start the server")
		return 1
	case "other":
		req.Peer = "someone-else"
	}
	res := PeerResult{Peer: req.Peer, Version: "fake 1.0", Ingest: []IngestRow{{Batch: req.Sources, Delivered: float64(req.ItemSize)}},
		Latency: []LatencyRow{{Rate: 1000}}, LatencyCurves: [][]CurvePoint{{{Percentile: 50, Millis: 2}}}}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// TestCallDriver: the request goes in on standard input, progress comes out
// line by line, the result is read from standard output; a driver that
// fails or answers for another peer is an error that says so.
func TestCallDriver(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	call := func(mode string) (*PeerResult, []string, error) {
		t.Setenv("BATON_FAKE_DRIVER", mode)
		var lines []string
		res, err := callDriver(context.Background(), exe, PeerRequest{Peer: "nats", Sources: 7, ItemSize: 128}, func(l string) { lines = append(lines, l) })
		return res, lines, err
	}
	res, lines, err := call("ok")
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != "fake 1.0" || len(res.Ingest) != 1 || res.Ingest[0].Batch != 7 || res.Ingest[0].Delivered != 128 {
		t.Fatalf("result %+v does not carry the request", res)
	}
	if c := res.Latency[0].Terminal.Curve; len(c) != 1 || c[0].Millis != 2 {
		t.Fatalf("the latency curve did not come back for the plots: %+v", c)
	}
	if len(lines) != 1 || lines[0] != "nats: starting" {
		t.Fatalf("progress %q", lines)
	}
	if _, _, err := call("crash"); err == nil || !strings.Contains(err.Error(), "cannot start the server") {
		t.Fatalf("a crashed driver: %v", err)
	}
	if _, _, err := call("other"); err == nil || !strings.Contains(err.Error(), `"someone-else"`) {
		t.Fatalf("a driver answering for another peer: %v", err)
	}
}

// TestBatchEncodings: a peer's item is Baton's update without msg_id, from
// which a terminal reads the due time, and its idempotency key is Baton's
// msg_id.
func TestBatchEncodings(t *testing.T) {
	b := Batch{Src: "s3", First: 51, Due: []int64{1732560000000000000, 1732560000000000007}, Pad: "xx"}
	body := b.appendBody(nil)
	var ups []baton.Update
	if err := json.Unmarshal(body, &ups); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	for i, u := range ups {
		item := b.AppendItem(nil, i)
		if sentAt(item) != b.Due[i] {
			t.Errorf("item %s: due %d, want %d", item, sentAt(item), b.Due[i])
		}
		if id := string(b.AppendMsgID(nil, i)); id != u.MsgID {
			t.Errorf("item %d: key %q, Baton's msg_id %q", i, id, u.MsgID)
		}
		var v struct {
			ID    string          `json:"id"`
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(item, &v); err != nil || v.ID != u.ID || string(v.Value) != string(u.Value) {
			t.Errorf("item %s is not update %+v without its msg_id (%v)", item, u, err)
		}
	}
}

// TestMergePeer: each scenario's answer joins the peer's entry; a new peer
// gets its own, with its version and configuration from its first answer.
func TestMergePeer(t *testing.T) {
	r := &Report{}
	r.mergePeer(&PeerResult{Peer: "nats", Version: "v1", Config: []string{"c"}, Ingest: []IngestRow{{Batch: 1}}})
	r.mergePeer(&PeerResult{Peer: "centrifugo", Ingest: []IngestRow{{Batch: 1}}})
	r.mergePeer(&PeerResult{Peer: "nats", Version: "v1", Config: []string{"c"}, Latency: []LatencyRow{{Rate: 1000}},
		Failover: &PeerFailover{Kind: "k"}, Failures: []string{"x"}})
	if len(r.Peers) != 2 {
		t.Fatalf("peers %+v", r.Peers)
	}
	n := r.Peers[0]
	if n.Peer != "nats" || len(n.Ingest) != 1 || len(n.Latency) != 1 || n.Failover == nil || len(n.Failures) != 1 || len(n.Config) != 1 {
		t.Fatalf("nats %+v", n)
	}
}
