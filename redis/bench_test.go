package redis_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

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

// redisCPU is the CPU time the server's main thread has used (INFO cpu):
// benchRedisCPU reports it per item, the server's own cost of the path, which
// the machine's other load does not change much.
func redisCPU(b *testing.B, c *goredis.Client) time.Duration {
	info, err := c.Info(b.Context(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sec float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "used_cpu_user_main_thread" || k == "used_cpu_sys_main_thread") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			sec += f
		}
	}
	return time.Duration(sec * float64(time.Second))
}

func benchRedisCPU(b *testing.B, c *goredis.Client, before time.Duration, items int) {
	b.ReportMetric(float64((redisCPU(b, c)-before).Microseconds())/float64(items), "redis-µs/item")
}

// BenchmarkRawXAdd is the yardstick: XADD of the same fields, pipelined in
// batches, with no index, no dedup, no script.
func BenchmarkRawXAdd(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	c := srv.Client()
	ctx := b.Context()
	ups := benchUpdates(b, benchBatch)
	h := baton.HashItem("raw", ups[0]).String()
	cpu := redisCPU(b, c)
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
	benchRedisCPU(b, c, cpu, b.N*benchBatch)
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
	c := srv.Client()
	cpu := redisCPU(b, c)
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Append(b.Context(), "bench", batches[i]); err != nil {
			b.Fatal(err)
		}
	}
	benchItemsPerSec(b, b.N*benchBatch)
	benchRedisCPU(b, c, cpu, b.N*benchBatch)
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
	rc := srv.Client()
	cpu := redisCPU(b, rc)
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
	benchRedisCPU(b, rc, cpu, b.N*benchBatch)
}
