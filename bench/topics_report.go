package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/baton-pub/baton"
)

// topicsTargets checks the many-topics targets (issue 12) on the row with
// the most topics: they are asked at 10,000.
func (r *Report) topicsTargets(add func(Target)) {
	if r.Topics == nil || len(r.Topics.Rows) == 0 {
		return
	}
	row := r.Topics.Rows[0]
	for _, x := range r.Topics.Rows {
		if x.Topics > row.Topics {
			row = x
		}
	}
	met := func(b bool) *bool { return &b }
	n := fmt.Sprintf(" (%d topics)", row.Topics)
	t := Target{Name: "every topic has a publisher" + n, Goal: "within 10 s of the last creation", Value: row.publishedText()}
	t.Met = met(row.PublishedMs != nil && *row.PublishedMs <= 10_000)
	add(t)
	if row.Idle != nil {
		add(Target{Name: "idle CPU per node" + n, Goal: "<= 3% of a core", Value: fmt.Sprintf("%.1f%% (max)", row.Idle.CPUMax), Met: met(row.Idle.CPUMax <= 3)})
		add(Target{Name: "store operations while idle" + n, Goal: "<= 100 /s in total", Value: row.opsText(), Met: met(row.Idle.StoreOps <= 100)})
		add(Target{Name: "leases taken while idle" + n, Goal: "0 (settled: no topic moves)", Value: fmt.Sprint(row.Idle.LeasesTaken), Met: met(row.Idle.LeasesTaken == 0)})
	}
	st := Target{Name: "GET /v1/status" + n, Goal: "p99 < 50 ms", Value: row.statusText()}
	if row.Status.Count > 0 {
		st.Met = met(row.StatusFailed == 0 && row.Status.P99 < 50)
	}
	add(st)
	if k := row.Kill; k != nil {
		extra := 500.0
		if r.Engine == "redis" {
			extra = 300
		}
		bound := r.Topics.TTLms + extra
		add(Target{Name: "SIGKILL of the busiest node, its topics' next item" + n, Goal: fmt.Sprintf("p99 <= %.0f ms (TTL + %.0f)", bound, extra),
			Value: row.killText(), Met: met(k.Late == 0 && k.Stats.Count > 0 && k.Stats.P99 <= bound)})
	}
	if j := row.Join; j != nil {
		add(Target{Name: "a node joins: leases balanced" + n, Goal: fmt.Sprintf("max/min <= %.2f within 10 s", balanceRatio),
			Value: row.joinText(), Met: met(j.BalancedMs != nil && *j.BalancedMs <= 10_000)})
	}
}

// witnessedText is when the witnesses had caught up with the new topics.
func (row TopicsRow) witnessedText() string {
	if row.WitnessedS == nil {
		return "not within the settle phase"
	}
	return fmt.Sprintf("%.1f s after the last creation", *row.WitnessedS)
}

func (row TopicsRow) publishedText() string {
	if row.PublishedMs != nil {
		return msText(*row.PublishedMs) + " ms"
	}
	s := fmt.Sprintf("not within %.0f s (%s of %s had one)", row.DeadlineS, thousands(row.Published), thousands(row.Created))
	if row.Created < row.Topics {
		s += fmt.Sprintf("; only %s of %s created, in %.0f s", thousands(row.Created), thousands(row.Topics), row.CreateSeconds)
	}
	return s
}

func (row TopicsRow) cpuText() string {
	if row.Idle == nil {
		return "-"
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(row.Idle.CPU)) {
		parts = append(parts, fmt.Sprintf("%.1f", row.Idle.CPU[n]))
	}
	return strings.Join(parts, " / ") + "%"
}

func (row TopicsRow) opsText() string {
	if row.Idle == nil {
		return "-"
	}
	s := msText(row.Idle.StoreOps)
	if row.Idle.RedisCommands != nil {
		s += fmt.Sprintf(" (Redis: %s commands/s, %s scripts/s)", msText(*row.Idle.RedisCommands), msText(*row.Idle.RedisScripts))
	}
	return s
}

func (row TopicsRow) statusText() string {
	if row.Status.Count == 0 {
		return fmt.Sprintf("no answer (each request bounded to %.0f s, all to %.0f s)", statusTimeout.Seconds(), row.DeadlineS)
	}
	s := fmt.Sprintf("p50 %s ms, p99 %s ms", msText(row.Status.P50), msText(row.Status.P99))
	if row.StatusFailed > 0 {
		s += fmt.Sprintf(" (%d of %d answered within %.0f s)", row.StatusAsked-row.StatusFailed, row.StatusAsked, row.DeadlineS)
	}
	return s
}

func (row TopicsRow) leasesText() string {
	l := row.Leases
	if l == nil {
		return "-"
	}
	s := fmt.Sprintf("%d / %d", l.Max, l.Min)
	if l.Unheld > 0 {
		s += fmt.Sprintf(", %d unheld", l.Unheld)
	}
	if l.Unread > 0 {
		s += fmt.Sprintf(", %d not read within %.0f s", l.Unread, row.DeadlineS)
	}
	return s
}

func (row TopicsRow) killText() string {
	k := row.Kill
	if k == nil {
		return "-"
	}
	if k.Stats.Count == 0 {
		return fmt.Sprintf("%d topics: none within %.0f s", k.Topics, k.DeadlineS)
	}
	s := fmt.Sprintf("%d topics: p50 %s, p99 %s, max %s ms", k.Topics, msText(k.Stats.P50), msText(k.Stats.P99), msText(k.Stats.Max))
	if k.LapseMs != nil {
		how := "lapsed"
		if k.EndedBy == baton.ReasonCrashed {
			how = "ended by a peer watch"
		}
		s += fmt.Sprintf(" (lease %s at %s ms; after it p50 %s, p99 %s ms)", how, msText(*k.LapseMs), msText(k.AfterLapse.P50), msText(k.AfterLapse.P99))
	}
	if k.AfterAppend.Count > 0 {
		s += fmt.Sprintf("; items appended by %s ms (ack p50 %s, p99 %s ms), each published after the later of the signal and its append p50 %s, p99 %s ms",
			msText(k.AppendedMs), msText(k.Ack.P50), msText(k.Ack.P99), msText(k.AfterAppend.P50), msText(k.AfterAppend.P99))
	}
	if k.Late > 0 {
		s += fmt.Sprintf("; %d not within %.0f s", k.Late, k.DeadlineS)
	}
	return s
}

func (row TopicsRow) joinText() string {
	j := row.Join
	if j == nil {
		return "-"
	}
	ratio := "unbounded (a node holds none)"
	if j.Final.Ratio != nil {
		ratio = fmt.Sprintf("%.2f", *j.Final.Ratio)
	}
	if j.BalancedMs != nil {
		return fmt.Sprintf("%s ms (max/min %s)", msText(*j.BalancedMs), ratio)
	}
	if n := j.Final.Unheld + j.Final.Unread; n > 0 {
		ratio += fmt.Sprintf(", %s topics unheld or unread", thousands(n))
	}
	return fmt.Sprintf("not within %.0f s (max/min %s)", j.DeadlineS, ratio)
}

// printTopics writes the many-topics table.
func (r *Report) printTopics(w io.Writer) {
	if r.Topics == nil {
		return
	}
	fmt.Fprintf(w, "\ntopics (%d nodes, lease TTL %.0f ms)\n", r.Topics.Nodes, r.Topics.TTLms)
	for _, row := range r.Topics.Rows {
		fmt.Fprintf(w, "  %d topics, %s\n", row.Topics, r.Engine)
		fmt.Fprintf(w, "    created                     %d in %.1f s\n", row.Created, row.CreateSeconds)
		fmt.Fprintf(w, "    every topic has a publisher %s\n", row.publishedText())
		fmt.Fprintf(w, "    witnesses caught up         %s\n", row.witnessedText())
		fmt.Fprintf(w, "    idle CPU per node           %s of a core\n", row.cpuText())
		fmt.Fprintf(w, "    store operations/s, idle    %s\n", row.opsText())
		if row.Idle != nil {
			fmt.Fprintf(w, "    leases taken while idle     %d\n", row.Idle.LeasesTaken)
		}
		fmt.Fprintf(w, "    GET /v1/status              %s\n", row.statusText())
		fmt.Fprintf(w, "    leases per node, max / min  %s\n", row.leasesText())
		fmt.Fprintf(w, "    SIGKILL of the busiest node %s\n", row.killText())
		fmt.Fprintf(w, "    a node joins, balanced      %s\n", row.joinText())
	}
}

// TopicsMarkdownHeader is the head of the table TopicsMarkdownRows fill,
// as docs/benchmarks.md shows it.
const TopicsMarkdownHeader = "| topics, store | every topic has a publisher after | idle CPU per node | store ops/s while idle | `/v1/status` | leases per node max / min | SIGKILL of the busiest node: its topics' next item | a node joins: balanced after |\n" +
	"|---|---|---|---|---|---|---|---|"

// topicsMarkdown writes the many-topics section.
func (r *Report) topicsMarkdown(w io.Writer) {
	if r.Topics == nil {
		return
	}
	fmt.Fprintf(w, "\n## Many topics\n\n%d nodes, lease TTL %.0f ms, one item published to each topic (%d requests in flight); idle figures over a window with no request to the nodes; store operations as the nodes' metrics count them (a script is one). See docs/benchmarks.md, Ten thousand topics.\n\n",
		r.Topics.Nodes, r.Topics.TTLms, topicsInFlight)
	fmt.Fprintln(w, TopicsMarkdownHeader)
	for _, row := range r.Topics.Rows {
		fmt.Fprintln(w, r.topicsMarkdownRow(row))
	}
	for _, row := range r.Topics.Rows {
		for _, n := range row.Notes {
			fmt.Fprintf(w, "- %d topics: %s\n", row.Topics, n)
		}
	}
}

func (r *Report) topicsMarkdownRow(row TopicsRow) string {
	name := "SQLite"
	if r.Engine == "redis" {
		name = "Redis"
	}
	return fmt.Sprintf("| %s, %s | %s | %s | %s | %s | %s | %s | %s |", thousands(row.Topics), name, row.publishedText(), row.cpuText(),
		row.opsText(), row.statusText(), row.leasesText(), row.killText(), row.joinText())
}

// msText writes a figure (milliseconds, or a rate) to a tenth below 100,
// else whole with thousands separated.
func msText(x float64) string {
	if x < 100 {
		return fmt.Sprintf("%.1f", x)
	}
	return thousands(int(math.Round(x)))
}

// thousands writes n with a comma between groups of three digits.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
