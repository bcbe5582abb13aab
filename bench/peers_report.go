package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// PeerCompare is one figure a peer shares with Baton, from the same run.
// Advantage is how far Baton is ahead: Baton's figure over the peer's where
// more is better (throughput), the peer's over Baton's where less is
// better (latency, memory, fail-over time); above 1 Baton leads, below 1
// it trails. Zero when either side has no figure.
type PeerCompare struct {
	Figure    string  `json:"figure"`
	Unit      string  `json:"unit"`
	Peer      string  `json:"peer"`
	Baton     float64 `json:"baton"`
	Value     float64 `json:"peer_value"`
	Advantage float64 `json:"baton_advantage"`
	Note      string  `json:"note,omitempty"`
}

// comparePeers lines up every peer figure with Baton's of the same run.
func comparePeers(r *Report) []PeerCompare {
	var out []PeerCompare
	add := func(peer, figure, unit string, baton, value float64, lessIsBetter bool, note string) {
		c := PeerCompare{Figure: figure, Unit: unit, Peer: peer, Baton: baton, Value: value, Note: note}
		switch {
		case baton <= 0 || value <= 0:
		case lessIsBetter:
			c.Advantage = value / baton
		default:
			c.Advantage = baton / value
		}
		out = append(out, c)
	}
	for _, p := range r.Peers {
		for _, pr := range p.Ingest {
			var b float64
			if r.Ingest != nil {
				for _, row := range r.Ingest.Rows {
					if row.Batch == pr.Batch {
						b = row.Delivered
					}
				}
			}
			add(p.Peer, fmt.Sprintf("ingest to a terminal, batch %d, idempotency on", pr.Batch), "items/s", b, pr.Delivered, false, "")
		}
		for _, pr := range p.Latency {
			var b float64
			var note []string
			if r.Latency != nil {
				for _, row := range r.Latency.Rows {
					if row.Rate == pr.Rate {
						b = row.Terminal.P99
						if !row.Sustained {
							note = append(note, "Baton did not sustain the rate")
						}
					}
				}
			}
			if !pr.Sustained {
				note = append(note, p.Peer+" did not sustain the rate")
			}
			add(p.Peer, fmt.Sprintf("latency p99 at %.0f items/s, %d terminals", pr.Rate, planFor(r.Quick).terminals), "ms", b, pr.Terminal.P99, true, strings.Join(note, "; "))
			if len(note) == 2 {
				// Neither sustained the rate: the p99s of two overloaded
				// runs rank nothing.
				out[len(out)-1].Advantage = 0
			}
		}
		for _, pr := range p.Fanout {
			var b FanoutRow
			if r.Fanout != nil {
				for _, row := range r.Fanout.Rows {
					if row.Terminals == pr.Terminals && row.isDefault() {
						b = row
					}
				}
			}
			add(p.Peer, fmt.Sprintf("fan-out to %d terminals, p99 < 100 ms", pr.Terminals), "deliveries/s", b.Best, pr.Best, false, "")
			// The ramp's first step, whether it passed or not: on a
			// saturated machine no step may pass, and this still compares.
			if len(b.Steps) > 0 && len(pr.Steps) > 0 && b.Steps[0].Rate == pr.Steps[0].Rate {
				add(p.Peer, fmt.Sprintf("fan-out to %d terminals, p99 at %.0f items/s", pr.Terminals, pr.Steps[0].Rate), "ms",
					b.Steps[0].Latency.P99, pr.Steps[0].Latency.P99, true, "")
			}
			add(p.Peer, fmt.Sprintf("memory per idle terminal (%d)", pr.Terminals), "KiB", b.IdleKB, pr.IdleKB, true, "")
		}
		if fo := p.Failover; fo != nil {
			var b float64
			if r.Handover != nil {
				for _, k := range r.Handover.Kinds {
					if k.Kind == "SIGKILL" {
						b = k.Stats.P99
					}
				}
			}
			add(p.Peer, "fail-over after SIGKILL of the leader, p99", "ms", b, fo.Stats.P99, true, fo.Note)
		}
	}
	return out
}

// advantage says a comparison's ratio in words.
func (c PeerCompare) advantage() string {
	switch {
	case c.Advantage == 0:
		return "-"
	case c.Advantage >= 1:
		return fmt.Sprintf("%.2fx ahead", c.Advantage)
	default:
		return fmt.Sprintf("%.2fx TRAILS", c.Advantage)
	}
}

func (c PeerCompare) value(v float64) string {
	if c.Unit == "ms" || c.Unit == "KiB" {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f", v)
	}
	return num(v)
}

// printPeers writes the side-by-side table.
func (r *Report) printPeers(w io.Writer) {
	if len(r.Compare) == 0 {
		return
	}
	fmt.Fprintln(w, "\nside by side (same run; advantage: how far Baton is ahead, below 1 it trails)")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\tunit\tpeer\tBaton\tpeer\tadvantage\tnote\n")
	for _, c := range r.Compare {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Figure, c.Unit, c.Peer, c.value(c.Baton), c.value(c.Value), c.advantage(), c.Note)
	}
	tw.Flush()
	for _, p := range r.Peers {
		fmt.Fprintf(w, "%s: %s\n", p.Peer, p.Version)
		for _, n := range p.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
		for _, f := range p.Failures {
			fmt.Fprintf(w, "  FAILED: %s\n", f)
		}
	}
}

// peersMarkdown writes the side-by-side section, with each peer's
// configuration.
func (r *Report) peersMarkdown(w io.Writer) {
	if len(r.Peers) == 0 {
		return
	}
	fmt.Fprintln(w, "\n## Side by side with the peers")
	fmt.Fprintln(w, "\nSame run, same item size, terminals and open-loop schedule. Advantage: how far Baton is ahead (Baton over the peer for throughput, the peer over Baton for latency, memory and fail-over time); below 1 Baton trails.")
	fmt.Fprintln(w, "\n| figure | unit | peer | Baton | peer | advantage | note |\n|---|---|---|---:|---:|---:|---|")
	for _, c := range r.Compare {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", c.Figure, c.Unit, c.Peer, c.value(c.Baton), c.value(c.Value), c.advantage(), c.Note)
	}
	for _, p := range r.Peers {
		fmt.Fprintf(w, "\n### %s\n\n%s\n\n", p.Peer, p.Version)
		for _, n := range p.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		if p.Failover != nil && p.Failover.Note != "" {
			fmt.Fprintf(w, "- fail-over: %s\n", p.Failover.Note)
			if len(p.Failover.Millis) > 0 {
				fmt.Fprintf(w, "- fail-over samples, ms: %v\n", p.Failover.Millis)
			}
		}
		for _, f := range p.Failures {
			fmt.Fprintf(w, "- FAILED: %s\n", f)
		}
		fmt.Fprintln(w, "\nConfiguration:")
		cfg := p.Config
		if p.Failover != nil && p.Failover.Config != "" {
			cfg = append(slices.Clip(cfg), "fail-over: "+p.Failover.Config)
		}
		for _, c := range cfg {
			if strings.Contains(c, "\n") {
				fmt.Fprintf(w, "\n```\n%s```\n", c)
			} else {
				fmt.Fprintf(w, "\n- %s\n", c)
			}
		}
	}
}
