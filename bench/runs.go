package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// A run's figures, lined up across the runs of `baton bench --runs N`:
// one machine's runs differ by more than most changes do, so the figures
// a target is judged on are medians of several runs, and the ratios beside
// a peer are each taken within one run (both sides saw the same machine)
// and then their median.

// Figure is one number of a run, named so that the same figure of another
// run lines up with it.
type Figure struct {
	Name  string  `json:"name"`
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
	// Higher is true where more is better (throughput).
	Higher bool `json:"higher_is_better"`
	// Failed marks a figure whose run did not hold (a latency rate not
	// sustained, a fan-out with no passing step): it ranks below every
	// figure that held, whatever its value.
	Failed bool `json:"failed,omitempty"`
}

// Median is a figure over the runs.
type Median struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Higher bool      `json:"higher_is_better"`
	Values []float64 `json:"values"`
	// Failed[i] is run i's Figure.Failed.
	Failed []bool `json:"failed"`
	// Median is the middle run's figure when the runs are ranked from
	// worst to best (failed ones worst); MedianFailed is that run's
	// Failed. With an even count it is the better of the two middle ones.
	Median       float64 `json:"median"`
	MedianFailed bool    `json:"median_failed,omitempty"`
}

// CompareMedian is a peer comparison over the runs: the median of each
// side's figure, and the median of the advantage each run measured.
type CompareMedian struct {
	Peer       string    `json:"peer"`
	Figure     string    `json:"figure"`
	Unit       string    `json:"unit"`
	Baton      float64   `json:"baton_median"`
	Value      float64   `json:"peer_median"`
	Advantages []float64 `json:"baton_advantages"`
	// Held[i] is false where run i's comparison carries a note (a side
	// that did not sustain the rate).
	Held      []bool  `json:"held"`
	Advantage float64 `json:"baton_advantage_median"`
}

// TargetRuns is a target over the runs: how many runs measured it and
// met it, and each run's value.
type TargetRuns struct {
	Name     string   `json:"name"`
	Goal     string   `json:"goal"`
	Values   []string `json:"values"`
	Measured int      `json:"measured"`
	Met      int      `json:"met"`
}

// Medians is what `--runs N` adds to the report of its last run.
type Medians struct {
	Runs    int             `json:"runs"`
	Figures []Median        `json:"figures"`
	Compare []CompareMedian `json:"compare,omitempty"`
	Targets []TargetRuns    `json:"targets"`
}

// figures lists the run's figures that medians are taken of.
func (r *Report) figures() []Figure {
	var out []Figure
	add := func(name, unit string, v float64, higher, failed bool) {
		out = append(out, Figure{Name: name, Unit: unit, Value: v, Higher: higher, Failed: failed})
	}
	if c := r.Ceilings; c != nil {
		for _, row := range c.Rows {
			add(fmt.Sprintf("ceiling, batch %d", row.Batch), "items/s", row.Items, true, false)
		}
		for _, row := range c.Latency {
			add(fmt.Sprintf("raw broadcaster latency p99 at %.0f items/s", row.Rate), "ms", row.Terminal.P99, false, !row.Sustained)
		}
		for _, row := range c.SSE {
			add(fmt.Sprintf("raw broadcaster fan-out to %d terminals", row.Terminals), "deliveries/s", row.Best, true, row.Best == 0)
		}
	}
	if in := r.Ingest; in != nil {
		for _, row := range in.Rows {
			add(fmt.Sprintf("ingest acked, batch %d", row.Batch), "items/s", row.Acked, true, row.Errors > 0)
			add(fmt.Sprintf("ingest to a terminal, batch %d", row.Batch), "items/s", row.Delivered, true, !row.Complete)
			if row.Ceiling > 0 {
				add(fmt.Sprintf("ingest to a terminal / ceiling, batch %d", row.Batch), "%", 100*row.Ratio, true, !row.Complete)
			}
		}
	}
	if l := r.Latency; l != nil {
		for _, row := range l.Rows {
			add(fmt.Sprintf("latency p50 at %.0f items/s", row.Rate), "ms", row.Terminal.P50, false, !row.Sustained)
			add(fmt.Sprintf("latency p99 at %.0f items/s", row.Rate), "ms", row.Terminal.P99, false, !row.Sustained)
		}
	}
	if f := r.Fanout; f != nil {
		for _, row := range f.Rows {
			add(fmt.Sprintf("fan-out to %d terminals (%s)", row.Terminals, row.label()), "deliveries/s", row.Best, true, row.Best == 0)
			add(fmt.Sprintf("memory per idle terminal, %d (%s)", row.Terminals, row.label()), "KiB", row.IdleKB, false, false)
		}
	}
	if h := r.Handover; h != nil {
		for _, k := range h.Kinds {
			add(fmt.Sprintf("hand-over after %s, p99", k.Kind), "ms", k.Stats.P99, false, k.Stats.Count == 0)
		}
	}
	if t := r.Topics; t != nil {
		for _, row := range t.Rows {
			if k := row.Kill; k != nil {
				add(fmt.Sprintf("SIGKILL of the busiest node, %d topics, p99", row.Topics), "ms", k.Stats.P99, false, k.Late > 0 || k.Stats.Count == 0)
			}
			if row.Idle != nil {
				add(fmt.Sprintf("idle CPU per node, %d topics (max)", row.Topics), "%", row.Idle.CPUMax, false, false)
			}
		}
	}
	if r.Spurious != nil {
		add("spurious hand-overs", "", float64(*r.Spurious), false, false)
	}
	return out
}

// medianOf ranks values from worst to best (failed worst) and returns the
// middle one's index into values.
func medianOf(values []float64, failed []bool, higher bool) int {
	idx := make([]int, len(values))
	for i := range idx {
		idx[i] = i
	}
	rank := func(i int) float64 {
		v := values[i]
		if !higher {
			v = -v
		}
		if failed[i] {
			return math.Inf(-1)
		}
		return v
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		ra, rb := rank(a), rank(b)
		switch {
		case ra < rb:
			return -1
		case ra > rb:
			return 1
		}
		// Two failed runs: the better value in its own right.
		va, vb := values[a], values[b]
		if !higher {
			va, vb = -va, -vb
		}
		switch {
		case va < vb:
			return -1
		case va > vb:
			return 1
		}
		return 0
	})
	return idx[len(idx)/2]
}

// median is medianOf's value for runs that all held.
func median(values []float64, higher bool) float64 {
	if len(values) == 0 {
		return 0
	}
	return values[medianOf(values, make([]bool, len(values)), higher)]
}

// mediansOf lines up the runs' figures, comparisons and targets. A figure
// that a run lacks (its scenario failed) is left out of that run's values.
func mediansOf(runs []*Report) *Medians {
	m := &Medians{Runs: len(runs)}
	var order []string
	byName := map[string]*Median{}
	for _, r := range runs {
		for _, f := range r.figures() {
			md := byName[f.Name]
			if md == nil {
				md = &Median{Name: f.Name, Unit: f.Unit, Higher: f.Higher}
				byName[f.Name] = md
				order = append(order, f.Name)
			}
			md.Values = append(md.Values, f.Value)
			md.Failed = append(md.Failed, f.Failed)
		}
	}
	for _, name := range order {
		md := *byName[name]
		i := medianOf(md.Values, md.Failed, md.Higher)
		md.Median, md.MedianFailed = md.Values[i], md.Failed[i]
		m.Figures = append(m.Figures, md)
	}

	type cacc struct {
		c            CompareMedian
		baton, value []float64
	}
	var corder []string
	cby := map[string]*cacc{}
	for _, r := range runs {
		for _, c := range r.Compare {
			key := c.Peer + "\x00" + c.Figure
			a := cby[key]
			if a == nil {
				a = &cacc{c: CompareMedian{Peer: c.Peer, Figure: c.Figure, Unit: c.Unit}}
				cby[key] = a
				corder = append(corder, key)
			}
			a.baton = append(a.baton, c.Baton)
			a.value = append(a.value, c.Value)
			a.c.Advantages = append(a.c.Advantages, c.Advantage)
			a.c.Held = append(a.c.Held, c.Note == "")
		}
	}
	for _, key := range corder {
		a := cby[key]
		higher := a.c.Unit != "ms" && a.c.Unit != "KiB" // as comparePeers orients it
		a.c.Baton, a.c.Value, a.c.Advantage = median(a.baton, higher), median(a.value, higher), median(a.c.Advantages, true)
		m.Compare = append(m.Compare, a.c)
	}

	var torder []string
	tby := map[string]*TargetRuns{}
	for _, r := range runs {
		for _, t := range r.Targets {
			tr := tby[t.Name]
			if tr == nil {
				tr = &TargetRuns{Name: t.Name, Goal: t.Goal}
				tby[t.Name] = tr
				torder = append(torder, t.Name)
			}
			v := t.Value
			if v == "" {
				v = "-"
			}
			tr.Values = append(tr.Values, v)
			if t.Met != nil {
				tr.Measured++
				if *t.Met {
					tr.Met++
				}
			}
		}
	}
	for _, name := range torder {
		m.Targets = append(m.Targets, *tby[name])
	}
	return m
}

// figureText is a figure for people: "-" for none, a star for a run that
// did not hold.
func figureText(v float64, failed bool) string {
	s := num(v)
	if v == 0 {
		s = "0"
	}
	if failed {
		s += "*"
	}
	return s
}

// eachRun is the figure of every run, for people.
func (f Median) eachRun() string {
	each := make([]string, len(f.Values))
	for i, v := range f.Values {
		each[i] = figureText(v, f.Failed[i])
	}
	return strings.Join(each, " / ")
}

// eachRun is every run's advantage, starred where a side did not hold.
func (c CompareMedian) eachRun() string {
	each := make([]string, len(c.Advantages))
	for i, a := range c.Advantages {
		each[i] = advText(a)
		if !c.Held[i] {
			each[i] += "*"
		}
	}
	return strings.Join(each, " / ")
}

func (m *Medians) print(w io.Writer) {
	if m == nil {
		return
	}
	fmt.Fprintf(w, "\n== medians of %d runs (* a run that did not hold: a rate not sustained, no fan-out step passed, items missing)\n", m.Runs)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "figure\tunit\teach run\tmedian\t\n")
	for _, f := range m.Figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", f.Name, f.Unit, f.eachRun(), figureText(f.Median, f.MedianFailed))
	}
	if len(m.Compare) > 0 {
		fmt.Fprintf(tw, "\nbeside the peers\tBaton (median)\tpeer (median)\tadvantage, each run\tmedian\t\n")
		for _, c := range m.Compare {
			fmt.Fprintf(tw, "%s: %s (%s)\t%s\t%s\t%s\t%s\t\n", c.Peer, c.Figure, c.Unit, num(c.Baton), num(c.Value), c.eachRun(), advText(c.Advantage))
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\ntargets over the runs:")
	for _, t := range m.Targets {
		if t.Measured == 0 {
			continue
		}
		fmt.Fprintf(w, "  met in %d of %d measured: %s (goal %s): %s\n", t.Met, t.Measured, t.Name, t.Goal, strings.Join(t.Values, " / "))
	}
}

func (m *Medians) markdown(w io.Writer) {
	if m == nil {
		return
	}
	fmt.Fprintf(w, "\n## Medians of %d runs\n\nEach run is a whole bench on fresh servers; the sections above are the last run's. A figure marked * did not hold in that run (a rate not sustained, no fan-out step passed, items missing) and ranks below every figure that did.\n\n", m.Runs)
	fmt.Fprintln(w, "| figure | unit | each run | median |\n|---|---|---|---:|")
	for _, f := range m.Figures {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", f.Name, f.Unit, f.eachRun(), figureText(f.Median, f.MedianFailed))
	}
	if len(m.Compare) > 0 {
		fmt.Fprintln(w, "\nBeside the peers: each run's advantage is Baton's figure over the peer's (the peer's over Baton's where less is better) in that run; above 1 Baton leads; * a run where a side did not sustain the rate.\n\n| peer | figure | Baton, median | peer, median | advantage, each run | median |\n|---|---|---:|---:|---|---:|")
		for _, c := range m.Compare {
			fmt.Fprintf(w, "| %s | %s (%s) | %s | %s | %s | %s |\n", c.Peer, c.Figure, c.Unit, num(c.Baton), num(c.Value), c.eachRun(), advText(c.Advantage))
		}
	}
	fmt.Fprintln(w, "\n| target | goal | met | each run |\n|---|---|---|---|")
	for _, t := range m.Targets {
		if t.Measured == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %d of %d | %s |\n", t.Name, t.Goal, t.Met, t.Measured, strings.Join(t.Values, " / "))
	}
}

func advText(a float64) string {
	if a == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a)
}
