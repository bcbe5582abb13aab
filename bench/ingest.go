package bench

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// IngestResult is the ingest scenario: closed-loop sources, each sending its
// next request as soon as the last is acknowledged.
type IngestResult struct {
	Nodes   int         `json:"nodes"`
	Sources int         `json:"sources"`
	Seconds float64     `json:"seconds_per_batch_size"`
	Rows    []IngestRow `json:"rows"`
	// Spurious counts release records (no fault was injected).
	Spurious int `json:"spurious_handovers"`
}

// IngestRow is one batch size.
type IngestRow struct {
	Batch int `json:"batch"`
	// Acked is items acknowledged (durable) per second.
	Acked    float64 `json:"acked_items_per_s"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	// Request is the latency of one publish request.
	Request Percentiles `json:"request_latency"`
	// Delivered is the ingest-to-terminal rate: the acknowledged items
	// over the time until the last of them reached a terminal.
	Delivered float64 `json:"delivered_items_per_s"`
	// Complete is false if the terminal did not get every item in time.
	Complete bool `json:"complete"`
	// Resumes counts the times the server cut the terminal off as a slow
	// consumer and it resumed after its last item (its time is in the
	// figure).
	Resumes int64 `json:"terminal_resumes"`
	// Ceiling is the raw store's items/s at the same batch size (see
	// ceilings); Ratio is Delivered / Ceiling.
	Ceiling float64 `json:"ceiling_items_per_s,omitempty"`
	Ratio   float64 `json:"ratio,omitempty"`
}

var ingestBatches = []int{1, 10, 100}

func runIngest(ctx context.Context, e *env, p plan, r *Report) error {
	c, err := e.startCluster(ctx, "ingest", e.cfg.Nodes, e.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	defer c.close()
	res := &IngestResult{Nodes: len(c.nodes), Sources: e.cfg.Sources, Seconds: p.ingestDur.Seconds()}
	r.Ingest = res
	hc := &http.Client{Transport: e.newTransport(e.cfg.Sources + 8), Timeout: 30 * time.Second}
	th := &http.Client{Transport: e.newTransport(8)}
	pad := padFor(e.cfg.ItemSize)
	for _, b := range ingestBatches {
		topic := "ingest-b" + strconv.Itoa(b)
		row, err := ingestOnce(ctx, e, p, c, hc, th, topic, b, pad)
		if err != nil {
			return fmt.Errorf("batch %d: %w", b, err)
		}
		res.Rows = append(res.Rows, row)
		e.logf("ingest batch %3d: %9.0f items/s acked, %9.0f items/s to a terminal (request p99 %.1f ms, %d errors, %d terminal resumes)",
			b, row.Acked, row.Delivered, row.Request.P99, row.Errors, row.Resumes)
		n, err := e.spurious(ctx, c, topic)
		if err != nil {
			return err
		}
		res.Spurious += n
	}
	return nil
}

// warmUp publishes one item (due at Unix ns 1, so no window counts it) and
// waits until the group's terminals have it: the topic exists, a publisher
// holds its lease, and the path to the terminals works.
func warmUp(ctx context.Context, g *terminals, ps Sender, pad string) error {
	g.win.Store(&window{since: 0, lat: newShardedHist(1)})
	if err := ps.Send(ctx, Batch{Src: "warm", First: time.Now().UnixNano(), Due: []int64{1}, Pad: pad}); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	if !waitFor(ctx, 30*time.Second, func() bool { return g.min() >= 1 }) {
		return fmt.Errorf("warm up: no terminal received the first item within 30s")
	}
	return nil
}

func ingestOnce(ctx context.Context, e *env, p plan, c *cluster, hc, th *http.Client, topic string, batch int, pad string) (IngestRow, error) {
	bases := c.bases()
	g, err := startTerminals(ctx, th, bases[:1], topic, 1, 256<<10, 1, 30*time.Second, true)
	if err != nil {
		return IngestRow{Batch: batch}, err
	}
	defer g.stop()
	return ingestWith(ctx, p, newPosters(hc, bases, topic, e.cfg.Spread), g, e.cfg.Sources, batch, pad)
}

// ingestWith runs one batch size of the ingest scenario: sources closed
// loops over posters (warmed up through the first) and one terminal, g.
func ingestWith(ctx context.Context, p plan, posters []Sender, g *terminals, sources, batch int, pad string) (IngestRow, error) {
	row := IngestRow{Batch: batch}
	if err := warmUp(ctx, g, posters[0], pad); err != nil {
		return row, err
	}
	start := time.Now()
	g.reset(start, 1)
	cl := closedLoop(ctx, posters, sources, batch, p.ingestDur, pad)
	row.Acked, row.Requests, row.Errors, row.Request = cl.rate, cl.requests, cl.errors, cl.latency
	acked, firstErr := cl.acked, cl.firstErr
	// Requests cut short at the end may still have been appended: wait for
	// at least what was acknowledged.
	want := acked
	row.Complete = waitFor(ctx, 30*time.Second, func() bool { return g.min() >= want })
	row.Resumes = g.resumed.Load()
	last := time.Unix(0, g.lastAt.Load())
	if d := last.Sub(start); d > 0 {
		row.Delivered = float64(min(g.min(), want)) / d.Seconds()
	}
	if row.Errors > 0 && row.Errors*10 > row.Requests {
		return row, fmt.Errorf("%d of %d requests failed, first: %v", row.Errors, row.Requests, firstErr)
	}
	return row, g.err()
}

// closedResult is the outcome of a closed loop.
type closedResult struct {
	acked, requests, errors int64
	rate                    float64
	latency                 Percentiles
	firstErr                error
}

// closedLoop runs sources, source i posting to posters[i%len], each sending
// its next batch as soon as the last is acknowledged, for dur.
func closedLoop(ctx context.Context, posters []Sender, sources, batch int, dur time.Duration, pad string) closedResult {
	lat := newShardedHist(sources)
	var acked, reqs, errs atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var wg sync.WaitGroup
	for s := range sources {
		wg.Go(func() {
			ps := posters[s%len(posters)]
			src := "s" + strconv.Itoa(s)
			due := make([]int64, batch)
			var n int64
			for rctx.Err() == nil {
				now := time.Now().UnixNano()
				for i := range due {
					due[i] = now
				}
				b := Batch{Src: src, First: n, Due: due, Pad: pad}
				n += int64(batch)
				t0 := time.Now()
				err := ps.Send(rctx, b)
				if rctx.Err() != nil {
					return // cut short by the end of the run: not counted
				}
				reqs.Add(1)
				if err != nil {
					errs.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				lat.Record(s, time.Since(t0))
				acked.Add(int64(batch))
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	return closedResult{acked: acked.Load(), requests: reqs.Load(), errors: errs.Load(),
		rate: float64(acked.Load()) / el.Seconds(), latency: percentilesOf(lat.Merge()), firstErr: firstErr}
}
