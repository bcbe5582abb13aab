package bench

import (
	"strings"
	"testing"
)

// runReport is a run with one ingest row, one latency row, a peer's
// comparison and a target, as finish would leave them.
func runReport(delivered, p99 float64, sustained bool, adv float64, met bool) *Report {
	return &Report{
		Ingest:  &IngestResult{Rows: []IngestRow{{Batch: 1, Acked: delivered, Delivered: delivered, Complete: true}}},
		Latency: &LatencyResult{Rows: []LatencyRow{{Rate: 1000, Sustained: sustained, Terminal: Percentiles{P50: p99 / 2, P99: p99}}}},
		Compare: []PeerCompare{{Peer: "nats", Figure: "ingest to a terminal, batch 1, idempotency on", Unit: "items/s", Baton: delivered, Value: delivered / adv, Advantage: adv}},
		Targets: []Target{{Name: "latency at 1k items/s", Goal: "p99 <= 3 ms", Value: "x", Met: &met}},
	}
}

func TestMediansOfRuns(t *testing.T) {
	runs := []*Report{
		runReport(100, 5, true, 0.5, false),
		// Not sustained: it ranks worst whatever its p99.
		runReport(300, 1, false, 2, true),
		runReport(200, 10, true, 1.5, true),
	}
	runs[1].Compare[0].Note = "nats did not sustain the rate"
	m := mediansOf(runs)
	fig := func(name string) Median {
		for _, f := range m.Figures {
			if f.Name == name {
				return f
			}
		}
		t.Fatalf("no figure %q in %+v", name, m.Figures)
		return Median{}
	}
	if f := fig("ingest to a terminal, batch 1"); f.Median != 200 || len(f.Values) != 3 || f.Values[1] != 300 {
		t.Errorf("ingest median %+v, want 200 of 100/300/200", f)
	}
	// Worst to best: 1 (not sustained), 10, 5: the middle is 10.
	if f := fig("latency p99 at 1000 items/s"); f.Median != 10 || f.MedianFailed || !f.Failed[1] {
		t.Errorf("latency median %+v, want 10 (the run that did not sustain ranks worst)", f)
	}
	if len(m.Compare) != 1 || m.Compare[0].Advantage != 1.5 || m.Compare[0].Baton != 200 || len(m.Compare[0].Advantages) != 3 {
		t.Errorf("compare %+v, want the median of each run's advantage, 1.5", m.Compare)
	}
	if len(m.Targets) != 1 || m.Targets[0].Met != 2 || m.Targets[0].Measured != 3 {
		t.Errorf("targets %+v, want met in 2 of 3", m.Targets)
	}
	var b strings.Builder
	r := runs[2]
	r.Earlier, r.Medians = runs[:2], m
	r.Print(&b)
	for _, want := range []string{"medians of 3 runs", "100 / 300 / 200", "1.0*", "0.50x / 2.00x* / 1.50x", "met in 2 of 3 measured"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printed report lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	r.Markdown(&b, nil)
	if !strings.Contains(b.String(), "## Medians of 3 runs") || !strings.Contains(b.String(), "| 2 of 3 |") {
		t.Errorf("markdown lacks the medians:\n%s", b.String())
	}
	// A failed earlier run fails the report.
	runs[0].Failures = []string{"ingest: boom"}
	if r.OK() {
		t.Error("OK with a failed earlier run")
	}
}

// TestMedianOfFailedRuns: when most runs failed, the median is a failed
// one, and among failed runs the better value ranks higher.
func TestMedianOfFailedRuns(t *testing.T) {
	i := medianOf([]float64{100, 20, 50}, []bool{true, true, false}, false)
	if i != 1 {
		t.Errorf("median index %d, want 1 (failed runs 100 < 20 < the sustained 50)", i)
	}
	if i := medianOf([]float64{4, 1, 3, 2}, []bool{false, false, false, false}, true); i != 2 {
		t.Errorf("even count: index %d, want 2 (the better middle, 3)", i)
	}
}
