package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBench runs `baton bench --quick --json` as a user would, on each
// engine, and checks that every scenario ran and produced sane, positive
// figures, and that the pictures were drawn. It asserts nothing about
// speed: this machine is shared.
func TestBench(t *testing.T) {
	if testing.Short() {
		t.Skip("runs baton bench --quick on each engine")
	}
	forEachEngine(t, func(t *testing.T, eng engine) {
		store := "sqlite"
		if u := eng(t); !bytes.HasPrefix([]byte(u), []byte("sqlite://")) {
			store = u
		}
		out := t.TempDir()
		cmd := exec.Command(batonBin, "bench", "--quick", "--json", "--out", out, "--store", store)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("bench: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
		var rep struct {
			Engine    string
			Scenarios []string
			Failures  []string
			Ceilings  *struct {
				Rows []struct {
					Batch int
					Items float64 `json:"items_per_s"`
				}
				SSE []fanRow `json:"sse"`
			}
			Ingest *struct {
				Rows []struct {
					Batch     int
					Acked     float64 `json:"acked_items_per_s"`
					Delivered float64 `json:"delivered_items_per_s"`
					Complete  bool
				}
			}
			Latency *struct {
				Rows []struct {
					Rate     float64
					Acked    int64
					Terminal struct {
						Count int64
						P50   float64 `json:"p50_ms"`
						P99   float64 `json:"p99_ms"`
						Max   float64 `json:"max_ms"`
					} `json:"terminal_latency"`
				}
			}
			Fanout *struct {
				Rows []fanRow
			}
			Handover *struct {
				Kinds []struct {
					Kind   string
					Millis []float64
				}
				Soak []struct {
					Acked float64 `json:"acked_items_per_s"`
				}
			}
			Topics *struct {
				Rows []struct {
					Topics  int
					Created int
				}
			}
			Targets []struct {
				Name string
			}
		}
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("report: %v\n%s", err, stdout.String())
		}
		if len(rep.Failures) > 0 || len(rep.Scenarios) != 6 {
			t.Fatalf("scenarios %v, failures %v\n%s", rep.Scenarios, rep.Failures, stderr.String())
		}
		if c := rep.Ceilings; c == nil || len(c.Rows) != 3 || len(c.SSE) == 0 {
			t.Fatalf("ceilings: %+v", c)
		}
		for _, r := range rep.Ceilings.Rows {
			if r.Items <= 0 {
				t.Errorf("ceiling at batch %d: %v items/s", r.Batch, r.Items)
			}
		}
		if rep.Ingest == nil || len(rep.Ingest.Rows) != 3 {
			t.Fatalf("ingest: %+v", rep.Ingest)
		}
		for _, r := range rep.Ingest.Rows {
			if r.Acked <= 0 || r.Delivered <= 0 || !r.Complete {
				t.Errorf("ingest batch %d: %+v", r.Batch, r)
			}
		}
		if rep.Latency == nil || len(rep.Latency.Rows) != 3 {
			t.Fatalf("latency: %+v", rep.Latency)
		}
		// A rate the machine cannot sustain may end before much is
		// delivered; the lowest rate must have figures, and every rate
		// that delivered must have ordered percentiles.
		for i, r := range rep.Latency.Rows {
			l := r.Terminal
			if i == 0 && (r.Acked <= 0 || l.Count <= 0) || l.Count > 0 && (l.P50 <= 0 || l.P99 < l.P50 || l.Max < l.P99) {
				t.Errorf("latency at %v items/s: %+v", r.Rate, r)
			}
		}
		if rep.Fanout == nil || len(rep.Fanout.Rows) == 0 {
			t.Fatalf("fanout: %+v", rep.Fanout)
		}
		for _, r := range append(rep.Fanout.Rows, rep.Ceilings.SSE...) {
			if r.Terminals <= 0 || len(r.Steps) == 0 || r.Steps[0].Deliveries <= 0 || r.IdleKB <= 0 {
				t.Errorf("fanout %s: %+v", r.Server, r)
			}
		}
		if rep.Handover == nil || len(rep.Handover.Kinds) != 3 || len(rep.Handover.Soak) != 2 {
			t.Fatalf("handover: %+v", rep.Handover)
		}
		for _, k := range rep.Handover.Kinds {
			if len(k.Millis) == 0 {
				t.Errorf("handover %s: no samples", k.Kind)
			}
			for _, ms := range k.Millis {
				if ms <= 0 {
					t.Errorf("handover %s: %v ms", k.Kind, k.Millis)
				}
			}
		}
		for _, s := range rep.Handover.Soak {
			if s.Acked <= 0 {
				t.Errorf("soak: %+v", s)
			}
		}
		if rep.Topics == nil || len(rep.Topics.Rows) != 1 || rep.Topics.Rows[0].Created != rep.Topics.Rows[0].Topics {
			t.Errorf("topics: %+v", rep.Topics)
		}
		if len(rep.Targets) == 0 {
			t.Error("no targets checked")
		}
		for _, f := range []string{"report.json", "report.md", "latency-" + rep.Engine + ".png", "handover-" + rep.Engine + ".png"} {
			if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
				t.Errorf("%s: %v", f, err)
			}
		}
	})
}

type fanRow struct {
	Server    string
	Terminals int
	IdleKB    float64 `json:"idle_kib_per_connection"`
	Steps     []struct {
		Deliveries float64 `json:"deliveries_per_s"`
	}
}
