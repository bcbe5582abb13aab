package redis_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
)

// The benchmarks compare the engine's ingest and publish paths with a raw
// pipelined XADD of the same items on the same server (the yardstick:
// ingest-to-terminal throughput at least 25% of raw XADD). Each reports
// items/s; run with -bench . -benchtime 20000x.

const benchBatch = 100

func benchUpdates(b *testing.B, n int) []baton.Update {
	out := make([]baton.Update, n)
	for i := range out {
		k := msgN.Add(1)
		u, err := baton.Normalize(baton.Update{ID: fmt.Sprintf("quote.%d", k%50),
			Value: []byte(fmt.Sprintf(`{"px":%d.25,"qty":%d,"ts":"2026-01-02T15:04:05Z"}`, k, k%1000)), MsgID: fmt.Sprintf("b-%d", k)})
		if err != nil {
			b.Fatal(err)
		}
		out[i] = u
	}
	return out
}

func benchItemsPerSec(b *testing.B, items int) {
	b.ReportMetric(float64(items)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkRawXAdd is the yardstick: XADD of the same fields, pipelined in
// batches, with no index, no dedup, no script.
func BenchmarkRawXAdd(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	c := srv.Client()
	ctx := b.Context()
	ups := benchUpdates(b, benchBatch)
	h := baton.HashItem("raw", ups[0]).String()
	b.ResetTimer()
	for range b.N {
		pipe := c.Pipeline()
		for _, u := range ups {
			pipe.Do(ctx, "XADD", "raw", "*", "id", u.ID, "value", []byte(u.Value), "msg_id", u.MsgID, "hash", h)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	benchItemsPerSec(b, b.N*benchBatch)
}

// BenchmarkAppend is the ingest path: one Append script per batch.
func BenchmarkAppend(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	s, err := redis.Open(b.Context(), srv.URL(0), redis.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batches := make([][]baton.Update, b.N)
	for i := range batches {
		batches[i] = benchUpdates(b, benchBatch)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Append(b.Context(), "bench", batches[i]); err != nil {
			b.Fatal(err)
		}
	}
	benchItemsPerSec(b, b.N*benchBatch)
}

// BenchmarkAppendPublishRead is the whole store path of an item: append,
// read after the cursor, commit under the lease, read as published (what a
// hub hands to terminals).
func BenchmarkAppendPublishRead(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	s, err := redis.Open(b.Context(), srv.URL(0), redis.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	l := acquire(b, s, "bench", "n1", time.Hour)
	batches := make([][]baton.Update, b.N)
	for i := range batches {
		batches[i] = benchUpdates(b, benchBatch)
	}
	var cur uint64
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Append(ctx, "bench", batches[i]); err != nil {
			b.Fatal(err)
		}
		items, err := s.Items(ctx, "bench", cur, benchBatch)
		if err != nil {
			b.Fatal(err)
		}
		c := baton.Commit{Topic: "bench", Epoch: l.Epoch, Holder: l.Holder, PrevSeq: cur, At: time.Now()}
		c.Items = items
		if _, err := s.Commit(ctx, c); err != nil {
			b.Fatal(err)
		}
		ps, err := s.Published(ctx, "bench", cur, benchBatch)
		if err != nil || len(ps) != benchBatch {
			b.Fatalf("Published: %d, %v", len(ps), err)
		}
		cur = ps[len(ps)-1].Seq
	}
	benchItemsPerSec(b, b.N*benchBatch)
}
