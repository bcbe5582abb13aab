package bench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// LatencyResult is the latency scenario: an open-loop source at fixed rates
// and terminals spread over the nodes.
type LatencyResult struct {
	Nodes     int          `json:"nodes"`
	Terminals int          `json:"terminals"`
	Seconds   float64      `json:"seconds_per_rate"`
	Rows      []LatencyRow `json:"rows"`
	Spurious  int          `json:"spurious_handovers"`
}

// LatencyRow is one rate.
type LatencyRow struct {
	Rate float64 `json:"rate"`
	// Sustained is false when the machine could not keep up with Rate:
	// the source fell more than a second behind its schedule, requests
	// failed, or terminals missed items after the grace period.
	Sustained bool   `json:"sustained"`
	Note      string `json:"note,omitempty"`
	Sent      int64  `json:"sent"`
	Acked     int64  `json:"acked"`
	// Achieved is acknowledged items/s over the run.
	Achieved float64 `json:"achieved_rate"`
	// Missing is deliveries owed but not made when the grace period ended
	// (items acknowledged times terminals, minus deliveries).
	Missing int64 `json:"missing_deliveries"`
	// Terminal is the latency from each item's intended send time to its
	// arrival at each terminal; Ack to its acknowledgement.
	Terminal Percentiles `json:"terminal_latency"`
	Ack      Percentiles `json:"ack_latency"`
	// GenCPU is the load generator's own CPU over the run, in cores (see
	// cpuMeter): what the bench itself took from the machine.
	GenCPU float64 `json:"generator_cpu_cores"`
}

func runLatency(ctx context.Context, e *env, p plan, r *Report) error {
	c, err := e.startCluster(ctx, "latency", e.cfg.Nodes, e.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	defer c.close()
	res := &LatencyResult{Nodes: len(c.nodes), Terminals: p.terminals, Seconds: p.latencyDur.Seconds()}
	r.Latency = res
	hc := &http.Client{Transport: e.newTransport(64), Timeout: 30 * time.Second}
	th := &http.Client{Transport: e.newTransport(p.terminals)}
	pad := padFor(e.cfg.ItemSize)
	for _, rate := range p.rates {
		topic := "latency-" + strconv.Itoa(int(rate))
		row, err := latencyOnce(ctx, e, p, c.bases(), hc, th, topic, rate, pad)
		if err != nil {
			return fmt.Errorf("rate %.0f: %w", rate, err)
		}
		res.Rows = append(res.Rows, row)
		verdict := "sustained"
		if !row.Sustained {
			verdict = "NOT SUSTAINED: " + row.Note
		}
		e.logf("latency at %6.0f items/s: terminal p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms; ack p99 %.2f ms; %s",
			rate, row.Terminal.P50, row.Terminal.P99, row.Terminal.P999, row.Terminal.Max, row.Ack.P99, verdict)
		n, err := e.spurious(ctx, c, topic)
		if err != nil {
			return err
		}
		res.Spurious += n
	}
	return nil
}

func latencyOnce(ctx context.Context, e *env, p plan, bases []string, hc, th *http.Client, topic string, rate float64, pad string) (LatencyRow, error) {
	g, err := startTerminals(ctx, th, bases, topic, p.terminals, 64<<10, 50, 30*time.Second, false)
	if err != nil {
		return LatencyRow{Rate: rate}, err
	}
	defer g.stop()
	return latencyWith(ctx, p, newPosters(hc, bases, topic, e.cfg.Spread), g, rate, pad)
}

// latencyWith runs one rate of the latency scenario: an open loop over
// posters (warmed up through the first) to the terminals g.
func latencyWith(ctx context.Context, p plan, posters []Sender, g *terminals, rate float64, pad string) (LatencyRow, error) {
	row := LatencyRow{Rate: rate}
	if err := warmUp(ctx, g, posters[0], pad); err != nil {
		return row, err
	}
	acks := newShardedHist(32)
	w := g.reset(time.Now(), 64)
	loop := &openLoop{Rate: rate, Dur: p.latencyDur, Batch: 100, Senders: 32, Src: "l", Pad: pad,
		Posters: posters, MaxLag: time.Second, Acks: acks}
	cpu := startCPU()
	lr := loop.run(ctx)
	row.Sent, row.Acked = lr.Sent, lr.Acked
	row.Achieved = float64(lr.Acked) / lr.Elapsed.Seconds()
	want := lr.Acked
	complete := waitFor(ctx, p.grace, func() bool { return g.min() >= want })
	row.GenCPU = cpu.cores()
	row.Missing = max(0, want*int64(g.n)-g.total())
	row.Terminal = percentilesOf(w.lat.Merge())
	row.Ack = percentilesOf(acks.Merge())
	row.Sustained = true
	switch {
	case lr.Aborted:
		row.Sustained, row.Note = false, fmt.Sprintf("the source fell more than 1s behind its schedule after %d of %.0f items", lr.Sent, rate*p.latencyDur.Seconds())
	case lr.Errors > 0:
		row.Sustained, row.Note = false, fmt.Sprintf("%d requests failed, first: %v", lr.Errors, lr.FirstErr)
	case !complete:
		row.Sustained, row.Note = false, fmt.Sprintf("terminals still owed %d deliveries %v after the source stopped", row.Missing, p.grace)
	case row.Achieved < 0.95*rate:
		row.Sustained, row.Note = false, fmt.Sprintf("acknowledged only %.0f items/s", row.Achieved)
	}
	if err := g.err(); err != nil {
		row.Sustained = false
		row.Note += fmt.Sprintf("; a terminal failed: %v", err)
	}
	return row, nil
}
