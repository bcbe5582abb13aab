package demo

import (
	"fmt"
	"io"
	"sort"

	"github.com/baton-pub/baton/checker"
	"github.com/baton-pub/baton/wire"
)

// Report is the demo's verdict, printed for people or as JSON.
type Report struct {
	Store      string            `json:"store"`
	Seconds    float64           `json:"seconds"`
	Acked      int               `json:"acked"`
	Retries    int               `json:"retries"`
	Delivered  map[string]int    `json:"delivered"`
	Lost       int               `json:"lost"`
	Duplicated int               `json:"duplicated"`
	Reordered  int               `json:"reordered"`
	Mismatched int               `json:"mismatched"`
	SplitBrain int               `json:"split_brain"`
	Handovers  []Handover        `json:"handovers"`
	Records    []wire.Handover   `json:"records"`
	Anomalies  []checker.Anomaly `json:"anomalies,omitempty"`
	Problems   []string          `json:"problems,omitempty"`
	OK         bool              `json:"ok"`
	Dir        string            `json:"dir,omitempty"`
}

// Handover is one injected fault and how long until the successor
// published: from the signal to the first item a terminal received under
// the successor's epoch.
type Handover struct {
	Reason    string  `json:"reason"`
	Signal    string  `json:"signal"`
	From      string  `json:"from"`
	FromEpoch uint64  `json:"from_epoch"`
	To        string  `json:"to"`
	ToEpoch   uint64  `json:"to_epoch"`
	Millis    float64 `json:"millis"`
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\n== Baton demo report (%.1fs, store %s)\n", r.Seconds, r.Store)
	fmt.Fprintf(w, "acked by the source:  %d (%d retried)\n", r.Acked, r.Retries)
	names := make([]string, 0, len(r.Delivered))
	for n := range r.Delivered {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "delivered to %-8s %d\n", n+":", r.Delivered[n])
	}
	fmt.Fprintf(w, "lost: %d   duplicated: %d   out of order: %d   content mismatches: %d   split brain: %d\n",
		r.Lost, r.Duplicated, r.Reordered, r.Mismatched, r.SplitBrain)
	fmt.Fprintln(w, "hand-overs (fault -> first item from the successor, seen by a terminal):")
	for _, h := range r.Handovers {
		fmt.Fprintf(w, "  %-7s %s (epoch %d) -> %s (epoch %d): reason %s, %.1f ms\n", h.Signal, h.From, h.FromEpoch, h.To, h.ToEpoch, h.Reason, h.Millis)
	}
	fmt.Fprintln(w, "lock-released records in the store (release -> successor acquired):")
	for i := len(r.Records) - 1; i >= 0; i-- {
		h := r.Records[i]
		d := "no successor yet"
		if h.HandoverMS != nil {
			d = fmt.Sprintf("%.1f ms", *h.HandoverMS)
		}
		fmt.Fprintf(w, "  epoch %d %s: %s at seq %d -> %s\n", h.Epoch, h.Holder, h.Reason, h.LastSeq, d)
	}
	for _, a := range r.Anomalies {
		fmt.Fprintf(w, "ANOMALY: %s %s seq %d %s: %s\n", a.Kind, a.Topic, a.Seq, a.Terminal, a.Detail)
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "PROBLEM:", p)
	}
	if r.OK {
		fmt.Fprintln(w, "OK: every acknowledged item reached every terminal once, in order.")
	} else {
		fmt.Fprintln(w, "FAILED")
	}
}
