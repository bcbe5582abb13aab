package integration

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestBenchUnknownPeer: `baton bench --peers` with a peer it does not know
// fails at once, naming it and the peers it knows.
func TestBenchUnknownPeer(t *testing.T) {
	cmd := exec.Command(batonBin, "bench", "--quick", "--peers", "nats,kafka")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatal("bench with an unknown peer succeeded")
	}
	if s := stderr.String(); !strings.Contains(s, `unknown peer "kafka"`) || !strings.Contains(s, "nats,nats-r3,centrifugo,centrifugo-3") || strings.Contains(s, "== ingest") {
		t.Fatalf("stderr does not name the peer, or the run started:\n%s", s)
	}
}

// TestBenchPeerNATS runs `baton bench --quick --peers nats --scenario
// ingest` as a user would from a checkout: the bench builds the peers'
// driver and nats-server with the Go toolchain (from the module cache once
// it has them) and puts each NATS figure beside Baton's. Centrifugo takes
// minutes to build the first time, so it runs only on demand (see
// docs/benchmarks.md). It asserts nothing about speed.
func TestBenchPeerNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds nats-server and runs baton bench --quick --peers nats --scenario ingest")
	}
	cmd := exec.Command(batonBin, "bench", "--quick", "--json", "--peers", "nats", "--scenario", "ingest", "--out", t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var rep struct {
		Failures []string
		Peers    []struct {
			Peer    string
			Version string
			Config  []string
			Ingest  []struct {
				Batch     int
				Delivered float64 `json:"delivered_items_per_s"`
				Complete  bool
			}
		}
		Compare []struct {
			Figure    string
			Peer      string
			Baton     float64
			Value     float64 `json:"peer_value"`
			Advantage float64 `json:"baton_advantage"`
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	if len(rep.Failures) > 0 || len(rep.Peers) != 1 {
		t.Fatalf("failures %v, peers %d\n%s", rep.Failures, len(rep.Peers), stderr.String())
	}
	p := rep.Peers[0]
	if p.Peer != "nats" || !strings.Contains(p.Version, "nats-server 2.") || len(p.Config) == 0 || len(p.Ingest) != 3 {
		t.Fatalf("peer %+v", p)
	}
	for _, r := range p.Ingest {
		if r.Delivered <= 0 || !r.Complete {
			t.Errorf("nats ingest batch %d: %+v", r.Batch, r)
		}
	}
	if len(rep.Compare) != 3 {
		t.Fatalf("side by side: %+v", rep.Compare)
	}
	for _, c := range rep.Compare {
		if c.Peer != "nats" || c.Baton <= 0 || c.Value <= 0 || c.Advantage <= 0 {
			t.Errorf("side by side %+v", c)
		}
	}
}
