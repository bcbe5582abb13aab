package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a bench run's outcome. Figures are absolute for this machine at
// this time; the ratios to the ceilings measured in the same run are what
// hold across runs.
type Report struct {
	Command string `json:"command,omitempty"`
	Engine  string `json:"engine"`
	// SQLiteSync is the nodes' synchronous level on SQLite (full, normal).
	SQLiteSync string    `json:"sqlite_sync,omitempty"`
	Quick      bool      `json:"quick"`
	TLS        bool      `json:"tls,omitempty"` // the nodes served HTTPS
	Started    time.Time `json:"started"`
	Seconds    float64   `json:"seconds"`
	Host       Host      `json:"host"`
	LeaseTTLms float64   `json:"lease_ttl_ms"`
	ItemSize   int       `json:"item_value_bytes"`
	Scenarios  []string  `json:"scenarios"`

	Ceilings *CeilingResult  `json:"ceilings,omitempty"`
	Ingest   *IngestResult   `json:"ingest,omitempty"`
	Latency  *LatencyResult  `json:"latency,omitempty"`
	Fanout   *FanoutResult   `json:"fanout,omitempty"`
	Handover *HandoverResult `json:"handover,omitempty"`
	Topics   *TopicsResult   `json:"topics,omitempty"`
	// Peers are the peers measured in the same run, and Compare each of
	// their figures beside Baton's (peers_report.go).
	Peers   []PeerResult  `json:"peers,omitempty"`
	Compare []PeerCompare `json:"compare,omitempty"`

	// Spurious is every release record counted under load with no fault,
	// at the configured TTL (ingest, latency, fan-out and the soak).
	Spurious *int `json:"spurious_handovers,omitempty"`

	Targets  []Target `json:"targets"`
	Failures []string `json:"failures,omitempty"`
	Dir      string   `json:"dir,omitempty"`

	// With --runs N (N > 1) this report is the last run's; Earlier are
	// the runs before it, and Medians lines up the figures of all N
	// (runs.go).
	Earlier []*Report `json:"earlier_runs,omitempty"`
	Medians *Medians  `json:"medians,omitempty"`
}

// Host describes the machine.
type Host struct {
	Name string `json:"name"`
	CPUs int    `json:"cpus"`
	OS   string `json:"os"`
	Arch string `json:"arch"`
	Go   string `json:"go"`
}

// Target is one of the project's targets (issue 5 and issue 2) with where
// this run stands. Met is nil when the run did not measure it.
type Target struct {
	Name   string `json:"name"`
	Goal   string `json:"goal"`
	Value  string `json:"value"`
	Met    *bool  `json:"met"`
	Reason string `json:"reason,omitempty"`
}

// latencyTarget is the target p99 <= bound ms of the latency row at rate
// (named by label), with the raw broadcaster's p99 beside it.
func (r *Report) latencyTarget(label string, rate, bound float64, note string) Target {
	t := Target{Name: fmt.Sprintf("latency at %s items/s, %d terminals", label, planFor(r.Quick).terminals), Goal: fmt.Sprintf("p99 <= %.0f ms%s", bound, note)}
	if r.Latency == nil {
		return t
	}
	for _, row := range r.Latency.Rows {
		if row.Rate != rate {
			continue
		}
		t.Value = fmt.Sprintf("p99 %.2f ms", row.Terminal.P99)
		met := row.Sustained && row.Terminal.P99 <= bound
		t.Met = &met
		if !row.Sustained {
			t.Value += " (not sustained: " + row.Note + ")"
		}
		if raw := r.rawLatency(row.Rate); raw != nil {
			t.Value += fmt.Sprintf("; raw broadcaster p99 %.2f ms", raw.Terminal.P99)
			if !raw.Sustained {
				t.Value += " (not sustained either)"
			}
		}
	}
	return t
}

// fanoutGoals are issue 16's deliveries/s at p99 < 100 ms, by terminals
// (on Redis).
var fanoutGoals = map[int]float64{1000: 1.2e6, 10000: 200e3}

// OK reports whether every scenario ran.
func (r *Report) OK() bool {
	for _, e := range r.Earlier {
		if !e.OK() {
			return false
		}
	}
	return len(r.Failures) == 0
}

// finish computes ratios to the ceilings and checks the targets.
func (r *Report) finish() {
	redis := r.Engine == "redis"
	if r.Ingest != nil && r.Ceilings != nil {
		for i := range r.Ingest.Rows {
			row := &r.Ingest.Rows[i]
			for _, c := range r.Ceilings.Rows {
				if c.Batch == row.Batch && c.Items > 0 {
					row.Ceiling, row.Ratio = c.Items, row.Delivered/c.Items
				}
			}
		}
	}
	if r.Fanout != nil && r.Ceilings != nil {
		for i := range r.Fanout.Rows {
			row := &r.Fanout.Rows[i]
			for _, c := range r.Ceilings.SSE {
				if c.Terminals == row.Terminals && c.Best > 0 {
					// Zero when no step of Baton's ramp passed.
					row.Ceiling, row.Ratio = c.Best, row.Best/c.Best
				}
			}
		}
	}
	r.Compare = comparePeers(r)
	met := func(b bool) *bool { return &b }
	add := func(t Target) { r.Targets = append(r.Targets, t) }

	// Ingest to terminal versus the raw store, at batch 100.
	want, raw := 0.5, "raw batched SQLite inserts"
	if redis {
		want, raw = 0.25, "raw pipelined XADD"
	}
	t := Target{Name: "ingest-to-terminal throughput (batch 100)", Goal: fmt.Sprintf(">= %.0f%% of %s", want*100, raw)}
	if r.Ingest != nil {
		for _, row := range r.Ingest.Rows {
			if row.Batch == 100 && row.Ceiling > 0 {
				t.Value = fmt.Sprintf("%.0f%% (%.0f of %.0f items/s)", row.Ratio*100, row.Delivered, row.Ceiling)
				t.Met = met(row.Ratio >= want)
			}
		}
	}
	add(t)

	// Latency at 10k items/s, and at 1k (issue 16).
	bound, bound1k := 10.0, 5.0
	if redis {
		bound, bound1k = 5, 3
	}
	add(r.latencyTarget("10k", 10000, bound, ""))
	add(r.latencyTarget("1k", 1000, bound1k, " (issue 16)"))

	// Fan-out, for each number of terminals measured.
	var fan *FanoutRow // the most terminals, for the memory target
	if r.Fanout != nil {
		for i := range r.Fanout.Rows {
			row := &r.Fanout.Rows[i]
			if !row.isDefault() {
				continue // measured to compare the writers, not a target
			}
			if fan == nil || row.Terminals > fan.Terminals {
				fan = row
			}
			t := Target{Name: fmt.Sprintf("fan-out deliveries/s to %d terminals (p99 < 100 ms)", row.Terminals),
				Goal: ">= 50% of the raw SSE broadcaster (the issue asks it at 10k terminals)"}
			var raw *FanoutRow
			if r.Ceilings != nil {
				for j := range r.Ceilings.SSE {
					if r.Ceilings.SSE[j].Terminals == row.Terminals {
						raw = &r.Ceilings.SSE[j]
					}
				}
			}
			switch {
			case raw == nil:
			case raw.Best > 0:
				t.Value = fmt.Sprintf("%.0f%% (%.0f of %.0f /s)", row.Ratio*100, row.Best, row.Ceiling)
				t.Met = met(row.Ratio >= 0.5)
			case row.Best > 0:
				t.Value = fmt.Sprintf("%.0f /s; the raw broadcaster passed no step", row.Best)
				t.Met = met(true)
			default:
				t.Value = "neither Baton nor the raw broadcaster kept p99 under 100 ms at the lowest step"
				t.Reason = "the machine cannot: no ratio"
			}
			add(t)
		}
	}
	// Issue 16's absolute fan-out figures, on Redis (docs/benchmarks.md
	// "Coalesced writes").
	if r.Fanout != nil && redis {
		for _, row := range r.Fanout.Rows {
			goal, ok := fanoutGoals[row.Terminals]
			if !row.isDefault() || !ok {
				continue
			}
			t := Target{Name: fmt.Sprintf("fan-out to %d terminals, deliveries/s at p99 < 100 ms", row.Terminals), Goal: fmt.Sprintf(">= %.0f /s (issue 16)", goal)}
			t.Value = fmt.Sprintf("%.0f /s", row.Best)
			if row.Best > 0 {
				t.Value += fmt.Sprintf(" (p99 %.1f ms)", row.BestP99)
			}
			t.Met = met(row.Best >= goal)
			add(t)
		}
	}
	t = Target{Name: "memory per idle terminal connection", Goal: "<= 16 KiB"}
	if fan != nil {
		t.Value = fmt.Sprintf("%.1f KiB (%d connections)", fan.IdleKB, fan.Terminals)
		t.Met = met(fan.IdleKB <= 16)
	}
	add(t)

	// Hand-over.
	if r.Handover != nil {
		for _, k := range r.Handover.Kinds {
			add(Target{Name: "hand-over after " + k.Kind, Goal: fmt.Sprintf("p99 <= %.0f ms", k.TargetMs),
				Value: fmt.Sprintf("p99 %.1f ms (n=%d)", k.Stats.P99, k.Stats.Count), Met: met(k.Met)})
		}
	} else {
		add(Target{Name: "hand-over", Goal: "crash p99 <= TTL+150 ms (Redis TTL+100), graceful p99 <= 50 ms"})
	}
	n, measured := 0, false
	if r.Ingest != nil {
		n, measured = n+r.Ingest.Spurious, true
	}
	if r.Latency != nil {
		n, measured = n+r.Latency.Spurious, true
	}
	if r.Fanout != nil {
		n, measured = n+r.Fanout.Spurious, true
	}
	if r.Handover != nil {
		for _, s := range r.Handover.Soak {
			if s.TTLms == r.LeaseTTLms {
				n, measured = n+s.Spurious, true
			}
		}
	}
	t = Target{Name: fmt.Sprintf("spurious hand-overs under full load, TTL %.0f ms", r.LeaseTTLms), Goal: "0"}
	if measured {
		r.Spurious = &n
		t.Value, t.Met = fmt.Sprint(n), met(n == 0)
	}
	add(t)
	r.topicsTargets(add)
}

func (r *Report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(j, '\n'), 0o640); err != nil {
		return err
	}
	pics, err := r.plot(dir)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	var b strings.Builder
	r.Markdown(&b, pics)
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o640)
}

func yes(b *bool) string {
	switch {
	case b == nil:
		return "not measured"
	case *b:
		return "met"
	default:
		return "MISSED"
	}
}

func pct(x float64) string {
	return fmt.Sprintf("%.0f%%", x*100)
}

// ratio is pct(r) when a ceiling was measured, else "-".
func ratio(ceiling, r float64) string {
	if ceiling == 0 {
		return "-"
	}
	return pct(r)
}

func num(x float64) string {
	switch {
	case x == 0:
		return "-"
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	default:
		return fmt.Sprintf("%.1f", x)
	}
}

// engineName is the engine as the report's title names it.
func (r *Report) engineName() string {
	if r.SQLiteSync != "" && r.SQLiteSync != "full" {
		return r.Engine + " (synchronous=" + strings.ToUpper(r.SQLiteSync) + ")"
	}
	return r.Engine
}

// Print writes the summary tables.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\n== Baton bench: %s%s, %d CPUs, item value %d bytes, lease TTL %.0f ms, %.0fs%s\n",
		r.engineName(), map[bool]string{true: " over TLS"}[r.TLS], r.Host.CPUs, r.ItemSize, r.LeaseTTLms, r.Seconds, map[bool]string{true: " (quick)"}[r.Quick])
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	defer tw.Flush()
	if r.Ingest != nil {
		fmt.Fprintf(tw, "\ningest (%d sources, %d nodes)\tacked items/s\tto terminal /s\tceiling items/s\tratio\treq p99 ms\t\n", r.Ingest.Sources, r.Ingest.Nodes)
		for _, row := range r.Ingest.Rows {
			fmt.Fprintf(tw, "batch %d\t%.0f\t%.0f\t%s\t%s\t%.1f\t\n", row.Batch, row.Acked, row.Delivered, num(row.Ceiling), ratio(row.Ceiling, row.Ratio), row.Request.P99)
		}
	} else if r.Ceilings != nil {
		fmt.Fprintf(tw, "\nstore ceiling\titems/s\t\n")
		for _, row := range r.Ceilings.Rows {
			fmt.Fprintf(tw, "batch %d\t%.0f\t\n", row.Batch, row.Items)
		}
	}
	if r.Latency != nil {
		fmt.Fprintf(tw, "\nlatency (%d terminals)\tsustained\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\tack p99 ms\traw p99 ms\tgen cores\t\n", r.Latency.Terminals)
		for _, row := range r.Latency.Rows {
			s := "yes"
			if !row.Sustained {
				s = fmt.Sprintf("NO (%.0f/s)", row.Achieved)
			}
			raw := "-"
			if rl := r.rawLatency(row.Rate); rl != nil {
				raw = fmt.Sprintf("%.2f", rl.Terminal.P99)
				if !rl.Sustained {
					raw += " (NO)"
				}
			}
			fmt.Fprintf(tw, "%.0f items/s\t%s\t%.2f\t%.2f\t%.2f\t%.1f\t%.2f\t%s\t%.2f\t\n", row.Rate, s, row.Terminal.P50, row.Terminal.P99, row.Terminal.P999, row.Terminal.Max, row.Ack.P99, raw, row.GenCPU)
		}
	}
	fan := func(rows []FanoutRow) {
		for _, row := range rows {
			fmt.Fprintf(tw, "%s, %d terminals\t%.0f\t%.1f\t%s\t%s\t%.1f\t%.2f\t\n", row.label(), row.Terminals, row.Best, row.BestP99, num(row.Ceiling), ratio(row.Ceiling, row.Ratio), row.IdleKB, row.BestGenCPU)
		}
	}
	if r.Fanout != nil || (r.Ceilings != nil && len(r.Ceilings.SSE) > 0) {
		fmt.Fprintf(tw, "\nfan-out (one node)\tdeliveries/s\tp99 ms\tceiling /s\tratio\tKiB/idle conn\tgen cores\t\n")
		if r.Fanout != nil {
			fan(r.Fanout.Rows)
		}
		if r.Ceilings != nil {
			fan(r.Ceilings.SSE)
		}
	}
	if r.Handover != nil {
		fmt.Fprintf(tw, "\nhand-over (TTL %.0f ms)\tn\tp50 ms\tp99 ms\tmax ms\tstore p50 ms\ttarget p99\t\n", r.Handover.TTLms)
		for _, k := range r.Handover.Kinds {
			sp := sampleStats(k.StoreMillis)
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f ms %s\t\n", k.Kind, k.Stats.Count, k.Stats.P50, k.Stats.P99, k.Stats.Max, sp.P50, k.TargetMs, yes(&k.Met))
		}
		for _, s := range r.Handover.Soak {
			fmt.Fprintf(tw, "soak, TTL %.0f ms\t%.0fs\t%.0f items/s\t%d terminals\t%d spurious\t\t\t\n", s.TTLms, s.Seconds, s.Acked, s.Terminals, s.Spurious)
		}
	}
	tw.Flush()
	r.printTopics(w)
	r.printPeers(w)
	fmt.Fprintln(w, "\ntargets:")
	for _, t := range r.Targets {
		v := t.Value
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(w, "  %-9s %s: %s (goal %s)\n", yes(t.Met), t.Name, v, t.Goal)
	}
	for _, f := range r.Failures {
		fmt.Fprintln(w, "FAILED:", f)
	}
	r.Medians.print(w)
}

// Markdown writes the report as Markdown; pics are the pictures' file names.
func (r *Report) Markdown(w io.Writer, pics []string) {
	fmt.Fprintf(w, "# Baton bench: %s\n\n", r.engineName())
	if r.Command != "" {
		fmt.Fprintf(w, "Command: `%s`\n\n", r.Command)
	}
	fmt.Fprintf(w, "%s, %d CPUs, %s/%s, %s; item value %d bytes; lease TTL %.0f ms; %.0f s%s.\n\n",
		r.Started.Format(time.RFC3339), r.Host.CPUs, r.Host.OS, r.Host.Arch, r.Host.Go, r.ItemSize, r.LeaseTTLms, r.Seconds,
		map[bool]string{true: " (--quick)"}[r.Quick])
	fmt.Fprintln(w, "## Targets")
	fmt.Fprintln(w, "\n| target | goal | this run | |\n|---|---|---|---|")
	for _, t := range r.Targets {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Value, yes(t.Met))
	}
	if r.Ingest != nil {
		fmt.Fprintf(w, "\n## Ingest\n\n%d closed-loop HTTP sources over %d nodes, %.1f s per batch size. Ceiling: %s.\n\n",
			r.Ingest.Sources, r.Ingest.Nodes, r.Ingest.Seconds, ceilingName(r))
		fmt.Fprintln(w, "| batch | acked items/s | to a terminal, items/s | ceiling items/s | ratio | request p50 ms | request p99 ms |\n|---:|---:|---:|---:|---:|---:|---:|")
		for _, row := range r.Ingest.Rows {
			fmt.Fprintf(w, "| %d | %.0f | %.0f | %s | %s | %.2f | %.2f |\n", row.Batch, row.Acked, row.Delivered, num(row.Ceiling), ratio(row.Ceiling, row.Ratio), row.Request.P50, row.Request.P99)
		}
	}
	if r.Latency != nil {
		fmt.Fprintf(w, "\n## Latency\n\nOpen loop, %.1f s per rate, %d terminals over %d nodes; latency from each item's intended send time to its arrival at each terminal.\n\n",
			r.Latency.Seconds, r.Latency.Terminals, r.Latency.Nodes)
		fmt.Fprintln(w, "| rate items/s | sustained | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | ack p99 ms | raw broadcaster: p50 / p99 ms |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|")
		for _, row := range r.Latency.Rows {
			s := "yes"
			if !row.Sustained {
				s = fmt.Sprintf("**no**: %s (%.0f items/s acked)", row.Note, row.Achieved)
			}
			raw := "-"
			if rl := r.rawLatency(row.Rate); rl != nil {
				raw = fmt.Sprintf("%.2f / %.2f", rl.Terminal.P50, rl.Terminal.P99)
				if !rl.Sustained {
					raw += " (not sustained)"
				}
			}
			fmt.Fprintf(w, "| %.0f | %s | %.2f | %.2f | %.2f | %.2f | %.1f | %.2f | %s |\n", row.Rate, s, row.Terminal.P50, row.Terminal.P90, row.Terminal.P99, row.Terminal.P999, row.Terminal.Max, row.Ack.P99, raw)
		}
	}
	var fans []FanoutRow
	if r.Fanout != nil {
		fans = append(fans, r.Fanout.Rows...)
	}
	if r.Ceilings != nil {
		fans = append(fans, r.Ceilings.SSE...)
	}
	if len(fans) > 0 {
		fmt.Fprint(w, "\n## Fan-out\n\nTerminals on one node; the best step of a ramp of delivery rates whose p99 stayed under 100 ms with nothing missing; RSS growth per idle connection. Baton runs once with each stream writer (`--sse-writer`); the targets are about the default, "+SSEWriters[0]+".\n\n")
		fmt.Fprintln(w, "| server | terminals | deliveries/s | p99 ms | ceiling /s | ratio | KiB per idle connection | load generator, cores |\n|---|---:|---:|---:|---:|---:|---:|---:|")
		for _, row := range fans {
			fmt.Fprintf(w, "| %s | %d | %.0f | %.1f | %s | %s | %.1f | %.2f |\n", row.label(), row.Terminals, row.Best, row.BestP99, num(row.Ceiling), ratio(row.Ceiling, row.Ratio), row.IdleKB, row.BestGenCPU)
		}
		fmt.Fprintln(w, "\nRamps (items/s -> deliveries/s, p99):")
		for _, row := range fans {
			var steps []string
			for _, s := range row.Steps {
				v := fmt.Sprintf("%.0f -> %.0f, %.1f ms", s.Rate, s.Deliveries, s.Latency.P99)
				if !s.OK {
					v += " (failed: " + s.Note + ")"
				}
				steps = append(steps, v)
			}
			fmt.Fprintf(w, "- %s, %d terminals: %s\n", row.label(), row.Terminals, strings.Join(steps, "; "))
		}
	}
	if r.Handover != nil {
		fmt.Fprintf(w, "\n## Hand-over\n\n%d nodes, lease TTL %.0f ms; time from the signal until a terminal received the successor's first item. Store: the release record's own release-to-acquire time.\n\n", r.Handover.Nodes, r.Handover.TTLms)
		fmt.Fprintln(w, "| fault | n | p50 ms | p99 ms | max ms | store p50 ms | target p99 | |\n|---|---:|---:|---:|---:|---:|---:|---|")
		for _, k := range r.Handover.Kinds {
			sp := sampleStats(k.StoreMillis)
			fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.1f | %.1f | %.0f ms | %s |\n", k.Kind, k.Stats.Count, k.Stats.P50, k.Stats.P99, k.Stats.Max, sp.P50, k.TargetMs, yes(&k.Met))
		}
		fmt.Fprintf(w, "\nRelease records: %d (%d beyond one per fault).\n\n", r.Handover.Records, r.Handover.Unexplained)
		fmt.Fprintln(w, "| soak: lease TTL | seconds | acked items/s | terminals | spurious hand-overs |\n|---:|---:|---:|---:|---:|")
		for _, s := range r.Handover.Soak {
			fmt.Fprintf(w, "| %.0f ms | %.0f | %.0f | %d | %d %s |\n", s.TTLms, s.Seconds, s.Acked, s.Terminals, s.Spurious, reasons(s.Reasons))
		}
	}
	r.topicsMarkdown(w)
	r.peersMarkdown(w)
	r.Medians.markdown(w)
	if len(pics) > 0 {
		fmt.Fprintln(w, "\n## Pictures")
		for _, p := range pics {
			fmt.Fprintf(w, "\n![%s](%s)\n", strings.TrimSuffix(p, filepath.Ext(p)), p)
		}
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(w, "\n## Failures")
		for _, f := range r.Failures {
			fmt.Fprintf(w, "- %s\n", f)
		}
	}
}

// rawLatency is the raw broadcaster's latency row at rate, if measured.
func (r *Report) rawLatency(rate float64) *LatencyRow {
	if r.Ceilings == nil {
		return nil
	}
	for i := range r.Ceilings.Latency {
		if r.Ceilings.Latency[i].Rate == rate {
			return &r.Ceilings.Latency[i]
		}
	}
	return nil
}

func ceilingName(r *Report) string {
	if r.Ceilings == nil {
		return "not measured (run the ceilings scenario)"
	}
	return r.Ceilings.Store
}

func reasons(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range []string{"expired", "crashed", "released", "failed"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return "(" + strings.Join(parts, ", ") + ")"
}
