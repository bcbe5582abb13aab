package chaos

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/internal/nemesis"
)

// Report is a chaos run's verdict, printed for people or as JSON.
type Report struct {
	Seed     uint64   `json:"seed"`
	Replay   string   `json:"replay"`
	Store    string   `json:"store"`
	Engine   string   `json:"engine"`
	Nodes    int      `json:"nodes"`
	Topics   []string `json:"topics"`
	LeaseTTL string   `json:"lease_ttl"`
	Interval string   `json:"interval"`
	Seconds  float64  `json:"seconds"`
	// Schedule is the plan drawn from the seed; Timeline what happened.
	Schedule  []nemesis.Fault       `json:"schedule"`
	Faults    map[string]FaultCount `json:"faults"`
	Injected  int                   `json:"injected"`
	Timeline  []Event               `json:"timeline"`
	Handovers int                   `json:"handovers"`
	// HandoverMS is, per kind of fault on a publisher, the time from the
	// fault to the first item a terminal received from a later epoch.
	HandoverMS map[string]HandoverTime `json:"handover_ms"`
	// HandoverTo says where HandoverMS ends.
	HandoverTo string         `json:"handover_to"`
	Workload   WorkloadStats  `json:"workload"`
	Check      checker.Report `json:"check"`
	Ledger     LedgerCheck    `json:"ledger"`
	// Cursors is each topic's final cursor, once every appended item was
	// published.
	Cursors  map[string]uint64 `json:"cursors"`
	Problems []string          `json:"problems,omitempty"`
	OK       bool              `json:"ok"`
	// Dir holds the servers' logs and the store; kept when the run failed
	// or with --keep.
	Dir string `json:"dir,omitempty"`
}

// FaultCount tallies one kind of fault.
type FaultCount struct {
	Planned  int `json:"planned"`
	Injected int `json:"injected"`
	// Skipped: the target was not there (no publisher at that moment,
	// the node impaired already, or the last healthy node).
	Skipped int `json:"skipped"`
	// Disconnected: slow terminals the server cut off (they resumed).
	Disconnected int `json:"disconnected,omitempty"`
	// Fenced: paused nodes the SQLite store killed (sqlite/fence.go)
	// because they were stopped inside a write transaction.
	Fenced int `json:"fenced,omitempty"`
	// Balanced: joined nodes that were handed topics, drained nodes that
	// handed every topic over.
	Balanced int `json:"balanced,omitempty"`
}

// HandoverTime summarises hand-over times in milliseconds.
type HandoverTime struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Event is one line of the timeline: a fault, its healing, a skipped
// fault, or a hand-over (from the store's release records).
type Event struct {
	At     float64 `json:"at"` // seconds since the start of the run
	Fault  int     `json:"fault,omitempty"`
	Kind   string  `json:"kind"`
	Target string  `json:"target"`
	Detail string  `json:"detail"`
}

type WorkloadStats struct {
	Acked   int `json:"acked"`
	Retries int `json:"retries"`
	Resent  int `json:"resent"`
	// LostAcks: updates whose first answer was lost and whose retry was
	// acknowledged as a duplicate, at the original seq.
	LostAcks  int            `json:"lost_acks"`
	Delivered map[string]int `json:"delivered"`
	Moves     int            `json:"moves"`
	Streams   int            `json:"streams"`
}

// LedgerCheck is the outcome of `baton ledger verify`.
type LedgerCheck struct {
	// Ran is true once verify was started.
	Ran    bool   `json:"ran"`
	OK     bool   `json:"ok"`
	Output string `json:"output,omitempty"`
	// Leaves counts each topic's ledger leaves, if verify could say.
	Leaves map[string]uint64 `json:"leaves,omitempty"`
}

// maxPrintedHandovers is the most hand-over records Print lists.
const maxPrintedHandovers = 300

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\n== Baton chaos report: seed %d, %s store %s, %d servers, %.1fs\n", r.Seed, r.Engine, r.Store, r.Nodes, r.Seconds)
	fmt.Fprintf(w, "replay: %s\n", r.Replay)
	fmt.Fprintln(w, "\ntimeline:")
	// With many topics a drain or a join moves hundreds: the hand-over
	// records stay in the JSON report.
	quiet := r.Handovers > maxPrintedHandovers
	for _, e := range r.Timeline {
		if quiet && e.Kind == "handover" {
			continue
		}
		n := ""
		if e.Fault > 0 {
			n = fmt.Sprintf("#%d ", e.Fault)
		}
		fmt.Fprintf(w, "  %8.3fs  %s%-15s %s: %s\n", e.At, n, e.Kind, e.Target, e.Detail)
	}
	if quiet {
		fmt.Fprintf(w, "  (%d hand-over records not shown: see --json)\n", r.Handovers)
	}
	fmt.Fprintln(w, "\nfaults (planned / injected / skipped):")
	for _, k := range nemesis.AllKinds {
		c, ok := r.Faults[string(k)]
		if !ok {
			continue
		}
		extra := ""
		if k == nemesis.SlowTerminal {
			extra = fmt.Sprintf("   (%d cut off by the server and resumed)", c.Disconnected)
		}
		if k == nemesis.Join {
			extra = fmt.Sprintf("   (%d handed topics by balancing)", c.Balanced)
		}
		if k == nemesis.Drain {
			extra = fmt.Sprintf("   (%d handed every topic over)", c.Balanced)
		}
		if (k == nemesis.PausePublisher || k == nemesis.HiccupPublisher) && c.Fenced > 0 {
			extra = fmt.Sprintf("   (%d fenced by the store while stopped, and restarted)", c.Fenced)
		}
		fmt.Fprintf(w, "  %-16s %4d / %4d / %4d%s\n", k, c.Planned, c.Injected, c.Skipped, extra)
	}
	fmt.Fprintf(w, "  %-16s        %4d injected in all; %d hand-over records\n", "total", r.Injected, r.Handovers)
	fmt.Fprintf(w, "\nhand-over time, from the fault on a publisher to %s (lease TTL %s):\n", r.HandoverTo, r.LeaseTTL)
	for _, k := range nemesis.AllKinds {
		if h, ok := r.HandoverMS[string(k)]; ok {
			fmt.Fprintf(w, "  %-16s %4d  p50 %8.1f ms  p99 %8.1f ms  max %8.1f ms\n", k, h.N, h.P50, h.P99, h.Max)
		}
	}
	if len(r.Topics) > 10 {
		fmt.Fprintf(w, "\nworkload: %d topics, %s to %s\n", len(r.Topics), r.Topics[0], r.Topics[len(r.Topics)-1])
	} else {
		fmt.Fprintf(w, "\nworkload: topics %s\n", strings.Join(r.Topics, ", "))
	}
	fmt.Fprintf(w, "  acknowledged %d messages (%d attempts retried; %d taken before their answer was lost, acknowledged on retry as duplicates; %d resent after their acknowledgement)\n",
		r.Workload.Acked, r.Workload.Retries, r.Workload.LostAcks, r.Workload.Resent)
	names := make([]string, 0, len(r.Workload.Delivered))
	for n := range r.Workload.Delivered {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, r.Workload.Delivered[n]))
	}
	fmt.Fprintf(w, "  delivered: %s\n", strings.Join(parts, ", "))
	fmt.Fprintf(w, "  terminals moved %d times; %d streams opened (first ones and resumes)\n", r.Workload.Moves, r.Workload.Streams)
	c := r.Check
	fmt.Fprintf(w, "\nchecker: lost %d, duplicated %d, reordered %d, mismatched %d, phantom %d, split brain %d, hand-over %d, unpublished %d, ledger %d; resets %d\n",
		c.Lost, c.Duplicated, c.Reordered, c.Mismatched, c.Phantom, c.SplitBrain, c.Handover, c.Unpublished, c.Ledger, c.Resets)
	if c.Reappended > 0 {
		fmt.Fprintf(w, "  %d messages published again after their first copy was trimmed (--retain: a msg id is known while its item is kept)\n", c.Reappended)
	}
	for _, a := range c.Anomalies {
		term := a.Terminal
		if term == "" {
			term = "-"
		}
		fmt.Fprintf(w, "ANOMALY: %s %s seq %d terminal %s: %s\n", a.Kind, a.Topic, a.Seq, term, a.Detail)
	}
	switch {
	case !r.Ledger.Ran:
		fmt.Fprintf(w, "ledger: %s\n", r.Ledger.Output)
	case r.Ledger.OK:
		fmt.Fprintf(w, "ledger: baton ledger verify passed:\n  %s\n", strings.ReplaceAll(r.Ledger.Output, "\n", "\n  "))
	default:
		fmt.Fprintf(w, "ledger: baton ledger verify FAILED: %s\n", r.Ledger.Output)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "PROBLEM:", p)
	}
	if r.Dir != "" {
		fmt.Fprintf(w, "logs and store kept in %s\n", r.Dir)
	}
	if r.OK {
		fmt.Fprintf(w, "OK: %d faults, every acknowledged item reached every terminal once, in order (seed %d)\n", r.Injected, r.Seed)
	} else {
		fmt.Fprintf(w, "FAILED (seed %d)\n", r.Seed)
	}
}
