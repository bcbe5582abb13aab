package integration

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
)

// TestDemo runs `baton demo --json` as a user would, on each engine, and
// checks its verdict: nothing lost, duplicated or reordered, and one
// expired and one released hand-over.
func TestDemo(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		cmd := exec.Command(batonBin, "demo", "--json", "--lease-ttl", "1s", "--store", eng(t))
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("demo: %v\n%s\n%s", err, out.String(), errb.String())
		}
		var rep struct {
			Acked, Lost, Duplicated, Reordered int
			OK                                 bool
			Delivered                          map[string]int
			Handovers                          []struct {
				Reason string
				Millis float64
			}
		}
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("report: %v\n%s", err, out.String())
		}
		if !rep.OK || rep.Acked == 0 || rep.Lost != 0 || rep.Duplicated != 0 || rep.Reordered != 0 || len(rep.Delivered) != 3 {
			t.Fatalf("report: %+v", rep)
		}
		if len(rep.Handovers) != 2 || rep.Handovers[0].Reason != "crashed" || rep.Handovers[1].Reason != "released" ||
			rep.Handovers[0].Millis <= 0 || rep.Handovers[1].Millis <= 0 {
			t.Fatalf("handovers: %+v", rep.Handovers)
		}
		for name, n := range rep.Delivered {
			if n < rep.Acked {
				t.Errorf("terminal %s got %d of %d acked items", name, n, rep.Acked)
			}
		}
	})
}
