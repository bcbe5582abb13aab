package bench

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/baton-pub/baton/sqlite"
)

// CeilingResult is what the machine allows, measured in the same run with
// the same item size.
type CeilingResult struct {
	// Store says what the store ceiling does: pipelined XADD with the
	// go-redis client Baton uses, or batched inserts into Baton's SQLite
	// schema (same tables, same indexes, same pragmas).
	Store   string       `json:"store"`
	Sources int          `json:"sources"`
	Seconds float64      `json:"seconds_per_batch_size"`
	Rows    []CeilingRow `json:"rows"`
	// SSE is the minimal SSE broadcaster's fan-out, measured as Baton's.
	SSE []FanoutRow `json:"sse"`
	// Latency is the latency scenario run against the minimal broadcaster
	// (one process, no store): what the machine allows at each rate.
	Latency []LatencyRow `json:"latency"`
}

// CeilingRow is one batch size.
type CeilingRow struct {
	Batch int     `json:"batch"`
	Items float64 `json:"items_per_s"`
}

func runCeilings(ctx context.Context, e *env, p plan, r *Report) error {
	res := &CeilingResult{Sources: e.cfg.Sources, Seconds: p.ingestDur.Seconds()}
	r.Ceilings = res
	pad := padFor(e.cfg.ItemSize)
	for _, b := range ingestBatches {
		var n float64
		var err error
		if e.engine == "redis" {
			res.Store = fmt.Sprintf("pipelined XADD (go-redis, %d concurrent pipelines of the batch size)", e.cfg.Sources)
			n, err = ceilingXAdd(ctx, e, b, pad, p.ingestDur)
		} else {
			res.Store = "batched INSERT into Baton's items table and indexes (one transaction per batch, WAL, synchronous=" + strings.ToUpper(e.sync) + ")"
			n, err = ceilingSQLite(ctx, e, b, pad, p.ingestDur)
		}
		if err != nil {
			return fmt.Errorf("store ceiling, batch %d: %w", b, err)
		}
		res.Rows = append(res.Rows, CeilingRow{Batch: b, Items: n})
		e.logf("ceiling, batch %3d: %9.0f items/s (%s)", b, n, e.engine)
	}
	for _, n := range p.fanoutSizes {
		t, err := startRawSSE(ctx, e, "raw-sse-"+strconv.Itoa(n))
		if err != nil {
			return err
		}
		row, err := fanoutRamp(ctx, e, p, t, n)
		t.stop()
		if err != nil {
			return fmt.Errorf("raw SSE broadcaster, %d terminals: %w", n, err)
		}
		res.SSE = append(res.SSE, row)
	}
	t, err := startRawSSE(ctx, e, "raw-sse-latency")
	if err != nil {
		return err
	}
	defer t.stop()
	hc := &http.Client{Transport: e.newTransport(64), Timeout: 30 * time.Second}
	th := &http.Client{Transport: e.newTransport(p.terminals)}
	for _, rate := range p.rates {
		row, err := latencyOnce(ctx, e, p, []string{t.base}, hc, th, "lat-"+strconv.Itoa(int(rate)), rate, pad)
		if err != nil {
			return fmt.Errorf("raw SSE latency at %.0f items/s: %w", rate, err)
		}
		res.Latency = append(res.Latency, row)
		verdict := "sustained"
		if !row.Sustained {
			verdict = "NOT SUSTAINED: " + row.Note
		}
		e.logf("raw broadcaster latency at %6.0f items/s: terminal p50 %.2f p99 %.2f max %.2f ms; %s",
			rate, row.Terminal.P50, row.Terminal.P99, row.Terminal.Max, verdict)
	}
	return nil
}

// rawItem is one item as the ceilings write it: the same fields and sizes
// as Baton's.
type rawItem struct {
	id, msgID string
	value     []byte
	hash      [32]byte
}

func rawItems(src string, from int64, n int, pad string) []rawItem {
	out := make([]rawItem, n)
	now := time.Now().UnixNano()
	for i := range out {
		k := from + int64(i)
		it := rawItem{id: "q." + strconv.FormatInt(k%50, 10), msgID: src + "-" + strconv.FormatInt(k, 10),
			value: appendValue(nil, now, pad)}
		it.hash = sha256.Sum256(append([]byte(it.id+it.msgID), it.value...))
		out[i] = it
	}
	return out
}

func ceilingXAdd(ctx context.Context, e *env, batch int, pad string, dur time.Duration) (float64, error) {
	o, err := e.redisOptions()
	if err != nil {
		return 0, err
	}
	o.PoolSize = e.cfg.Sources + 4
	c := goredis.NewClient(o)
	defer c.Close()
	key := "bench-" + e.nonce + "-raw-xadd-" + strconv.Itoa(batch)
	defer c.Del(context.WithoutCancel(ctx), key)
	var items atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	// The items are made before the clock starts, so that the ceiling's
	// clients only send: what is measured is the store and the client
	// library, not the bench hashing and formatting items on the same
	// cores. Each source cycles through its own few batches.
	const batchesPerSource = 4
	args := make([][][][]any, e.cfg.Sources) // source, batch, item: XADD field-value pairs
	now := strconv.FormatInt(time.Now().UnixMicro(), 10)
	for s := range args {
		its := rawItems("r"+strconv.Itoa(s), 0, batch*batchesPerSource, pad)
		for b := range batchesPerSource {
			var vals [][]any
			for _, it := range its[b*batch : (b+1)*batch] {
				vals = append(vals, []any{"id", it.id, "value", it.value,
					"msg_id", it.msgID, "hash", hex.EncodeToString(it.hash[:]), "ingested_us", now})
			}
			args[s] = append(args[s], vals)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	start := time.Now()
	for s := range e.cfg.Sources {
		wg.Go(func() {
			for n := 0; rctx.Err() == nil; n++ {
				pipe := c.Pipeline()
				for _, vals := range args[s][n%batchesPerSource] {
					pipe.XAdd(rctx, &goredis.XAddArgs{Stream: key, Values: vals})
				}
				if _, err := pipe.Exec(rctx); err != nil {
					if rctx.Err() == nil {
						once.Do(func() { firstErr = err })
					}
					return
				}
				items.Add(int64(batch))
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(items.Load()) / time.Since(start).Seconds(), nil
}

func ceilingSQLite(ctx context.Context, e *env, batch int, pad string, dur time.Duration) (float64, error) {
	path := filepath.Join(e.dir, "ceiling-"+strconv.Itoa(batch)+".db")
	// The pragmas of sqlite.Open: WAL, the nodes' synchronous level, an
	// immediate transaction per write.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + e.sync + ")&_pragma=foreign_keys(off)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, sqlite.Schema()); err != nil {
		return 0, fmt.Errorf("create schema: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var seq, items int64
	start := time.Now()
	for rctx.Err() == nil {
		its := rawItems("c", seq, batch, pad)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return 0, err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO items (topic, seq, id, value, msg_id, hash, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			tx.Rollback()
			return 0, err
		}
		now := time.Now().UnixNano()
		for _, it := range its {
			seq++
			if _, err := ins.ExecContext(ctx, "raw", seq, it.id, it.value, it.msgID, it.hash[:], now); err != nil {
				tx.Rollback()
				return 0, err
			}
		}
		ins.Close()
		if err := tx.Commit(); err != nil {
			return 0, err
		}
		items += int64(batch)
	}
	return float64(items) / time.Since(start).Seconds(), nil
}
