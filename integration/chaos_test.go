package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/baton-pub/baton/internal/redistest"
)

// chaosReport is the part of `baton chaos --json` the tests read.
type chaosReport struct {
	Seed     uint64
	OK       bool
	Engine   string
	Injected int
	Faults   map[string]struct{ Planned, Injected, Skipped int }
	Timeline []struct {
		Kind, Target, Detail string
	}
	Handovers int
	Workload  struct {
		Acked     int
		Delivered map[string]int
		Moves     int
		Resent    int
	}
	Check struct {
		Acked     int
		Anomalies []struct {
			Kind, Topic, Terminal, Detail string
			Seq                           uint64
		}
	}
	Cursors  map[string]uint64
	Problems []string
	Dir      string
}

func runChaos(t *testing.T, args ...string) (chaosReport, int) {
	t.Helper()
	cmd := exec.Command(batonBin, append([]string{"chaos", "--json"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("chaos: %v", err)
	}
	var rep chaosReport
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("chaos report (exit %d): %v\n%s\n--- progress:\n%s", code, jerr, out.String(), tail(errb.Bytes(), 8192))
	}
	if t.Failed() || code != 0 {
		t.Logf("--- progress (last 8 KiB):\n%s", tail(errb.Bytes(), 8192))
	}
	return rep, code
}

// TestChaos runs `baton chaos` for a short seeded run on each engine, as CI
// does on every change: every kind of fault the engine allows, and an
// independent checker that must find nothing.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("two 30-second chaos runs")
	}
	for _, tc := range []struct {
		name, store string
		seed        string
		kinds       []string // that must have been injected
	}{
		{"sqlite", "sqlite", "11", []string{"kill-publisher", "pause-publisher", "term-publisher", "move-terminal"}},
		{"redis", "redis", "12", []string{"kill-publisher", "pause-publisher", "partition", "restart-store"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.store == "redis" {
				redistest.Binary(t, "redis-server") // skip without Redis, fail under CI
			}
			t.Parallel()
			rep, code := runChaos(t, "--store", tc.store, "--duration", "30s", "--seed", tc.seed, "--interval", "700ms")
			if code != 0 || !rep.OK {
				t.Fatalf("chaos exited %d: ok %v, anomalies %+v, problems %v (logs in %s)", code, rep.OK, rep.Check.Anomalies, rep.Problems, rep.Dir)
			}
			if rep.Engine != tc.name || rep.Workload.Acked == 0 || rep.Handovers == 0 || rep.Injected < 15 {
				t.Fatalf("a run without substance: engine %s, acked %d, hand-overs %d, faults %d", rep.Engine, rep.Workload.Acked, rep.Handovers, rep.Injected)
			}
			for _, k := range tc.kinds {
				if rep.Faults[k].Injected == 0 {
					t.Errorf("no %s injected: %+v", k, rep.Faults)
				}
			}
			if tc.name == "sqlite" {
				if _, ok := rep.Faults["partition"]; ok {
					t.Error("a partition was planned on SQLite")
				}
			}
			for name, n := range rep.Workload.Delivered {
				if n < rep.Workload.Acked/3/2 {
					t.Errorf("terminal %s got %d items of %d acknowledged over 3 topics", name, n, rep.Workload.Acked)
				}
			}
			t.Logf("seed %s: %d faults, %d hand-overs, %d acknowledged, %d moves, %d resent", tc.seed, rep.Injected, rep.Handovers,
				rep.Workload.Acked, rep.Workload.Moves, rep.Workload.Resent)
		})
	}
}

// TestChaosManyTopics runs `baton chaos` with more topics than
// chaos.ManyTopics on each engine: sources and terminals in all, spread over
// the topics; nodes join, are drained and undrained, killed and paused.
// Every topic must be read back and found clean.
func TestChaosManyTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("two 15-second chaos runs")
	}
	for _, tc := range []struct{ name, seed string }{{"sqlite", "9"}, {"redis", "21"}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "redis" {
				redistest.Binary(t, "redis-server") // skip without Redis, fail under CI
			}
			t.Parallel()
			const topics = 150
			rep, code := runChaos(t, "--store", tc.name, "--duration", "15s", "--seed", tc.seed, "--interval", "700ms",
				"--topics", "150", "--sources", "5", "--terminals", "8", "--faults", "join,drain,kill-publisher,pause-publisher,term-publisher")
			if code != 0 || !rep.OK {
				t.Fatalf("chaos exited %d: ok %v, anomalies %+v, problems %v (logs in %s)", code, rep.OK, rep.Check.Anomalies, rep.Problems, rep.Dir)
			}
			for _, k := range []string{"join", "drain"} {
				if rep.Faults[k].Injected == 0 {
					t.Errorf("no %s injected: %+v; skipped because: %v", k, rep.Faults, skips(rep, k))
				}
			}
			if rep.Faults["kill-publisher"].Injected+rep.Faults["pause-publisher"].Injected == 0 {
				t.Errorf("no publisher killed or paused: %+v", rep.Faults)
			}
			// Sources and terminals are totals; every topic has an item
			// and was read back whole by the audit.
			if len(rep.Workload.Delivered) != 8+1 || rep.Workload.Delivered["audit"] < rep.Workload.Acked {
				t.Errorf("delivered %v of %d acknowledged", rep.Workload.Delivered, rep.Workload.Acked)
			}
			if len(rep.Cursors) != topics {
				t.Errorf("%d topics settled of %d", len(rep.Cursors), topics)
			}
			for topic, c := range rep.Cursors {
				if c == 0 {
					t.Errorf("%s: nothing published", topic)
				}
			}
			t.Logf("seed %s: %d faults %v, %d hand-overs, %d acknowledged", tc.seed, rep.Injected, rep.Faults, rep.Handovers, rep.Workload.Acked)
		})
	}
}

// skips lists why faults of kind were skipped, from the timeline.
func skips(rep chaosReport, kind string) []string {
	var why []string
	for _, e := range rep.Timeline {
		if e.Kind == "skip" && e.Target == kind {
			why = append(why, e.Detail)
		}
	}
	return why
}

// TestChaosFailsOnAnomaly: the harness itself can fail. --sabotage records
// one delivery no source sent, after a gap; the checker must report it with
// its seq and terminal, and chaos must exit 1.
func TestChaosFailsOnAnomaly(t *testing.T) {
	for _, tc := range []struct {
		name, terminal string
		args           []string
	}{
		{"per-topic", "t1.term1", nil},
		{"many-topics", "term1", []string{"--topics", "150", "--sources", "10", "--terminals", "4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, code := runChaos(t, append([]string{"--store", "sqlite", "--duration", "3s", "--seed", "5", "--faults", "move-terminal", "--sabotage"}, tc.args...)...)
			if rep.Dir != "" {
				// A failed run keeps its directory for the user; this one
				// failed on purpose.
				t.Cleanup(func() { os.RemoveAll(rep.Dir) })
			}
			if code != 1 || rep.OK {
				t.Fatalf("sabotaged run exited %d, ok %v", code, rep.OK)
			}
			var phantom, lost bool
			for _, a := range rep.Check.Anomalies {
				phantom = phantom || a.Kind == "phantom" && a.Terminal == tc.terminal && a.Seq > 0
				lost = lost || a.Kind == "lost" && a.Terminal == tc.terminal
			}
			if !phantom || !lost {
				t.Fatalf("anomalies %+v", rep.Check.Anomalies)
			}
		})
	}
}
