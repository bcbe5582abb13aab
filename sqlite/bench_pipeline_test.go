package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/sqlite"
)

// BenchmarkPipeline is the store's share of `baton bench --scenario
// latency` on one topic: three handles on one file (three nodes), each
// appending a batch in turn, the publisher's handle committing what it
// was signalled, and a follower's handle reading the published items, as
// its hub does. Every handle's watcher runs as in a node. It reports the
// process's CPU per item, which the load of a shared machine distorts
// least, so two commits can be compared by it (docs/benchmarks.md, the
// one-topic figures after the node lease).
func BenchmarkPipeline(b *testing.B) {
	for _, batch := range []int{10, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := b.Context()
			hs := openHandles(b, 3)
			pub, follower := hs[0], hs[1]
			l := acquireForBench(b, pub, "t")
			appended := pub.Subscribe("t", baton.SignalAppend)
			defer appended.Close()
			committed := follower.Subscribe("t", baton.SignalCommit)
			defer committed.Close()
			var n, cursor, read uint64
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := range b.N {
				ups := make([]baton.Update, batch)
				for j := range ups {
					ups[j] = baton.Update{ID: fmt.Sprintf("q.%d", n%50), Value: []byte(fmt.Sprintf(`{"n":%d}`, n)), MsgID: fmt.Sprintf("m-%d", n)}
					n++
				}
				if _, err := hs[i%3].Append(ctx, "t", ups); err != nil {
					b.Fatal(err)
				}
				// The publisher waits for the signal (its own or its
				// watcher's), as publisher.Run does.
				<-appended.C()
				items, err := pub.Items(ctx, "t", cursor, 1000)
				if err != nil {
					b.Fatal(err)
				}
				for len(items) > 0 {
					c := baton.Commit{Topic: "t", Epoch: l.Epoch, Holder: l.Holder, PrevSeq: cursor, Items: items, At: time.Now()}
					if _, err := pub.Commit(ctx, c); err != nil {
						b.Fatal(err)
					}
					cursor = items[len(items)-1].Seq
					if items, err = pub.Items(ctx, "t", cursor, 1000); err != nil {
						b.Fatal(err)
					}
				}
				for read < cursor {
					<-committed.C()
					ps, err := follower.Published(ctx, "t", read, 1000)
					if err != nil {
						b.Fatal(err)
					}
					if len(ps) > 0 {
						read = ps[len(ps)-1].Seq
					}
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "items/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*batch), "cpu-ns/item")
		})
	}
}

// openHandles opens n handles on one new file (sync=normal: the CPU of the
// statements, not the disk's fsync), closed when b ends.
func openHandles(b *testing.B, n int) []*sqlite.Store {
	path := filepath.Join(b.TempDir(), "b.db")
	hs := make([]*sqlite.Store, n)
	for i := range hs {
		s, err := sqlite.Open(b.Context(), "sqlite://"+path+"?sync=normal", sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		hs[i] = s
	}
	return hs
}

// acquireForBench takes the topic's lock under a node lease of an hour.
func acquireForBench(b *testing.B, s *sqlite.Store, topic string) baton.Lease {
	nl, err := s.AcquireNode(context.Background(), "pub", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	l, err := s.Acquire(context.Background(), topic, nl)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkWatchHop is one append by a handle and the wake-up of another
// handle's subscriber (its watcher's hop, as between two nodes).
func BenchmarkWatchHop(b *testing.B) {
	ctx := b.Context()
	hs := openHandles(b, 2)
	a, o := hs[0], hs[1]
	sub := o.Subscribe("t", baton.SignalAppend)
	defer sub.Close()
	var appending, waking time.Duration
	b.ResetTimer()
	for i := range b.N {
		u := baton.Update{ID: "q", Value: []byte(`1`), MsgID: fmt.Sprintf("m-%d", i)}
		t0 := time.Now()
		if _, err := a.Append(ctx, "t", []baton.Update{u}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		<-sub.C()
		appending += t1.Sub(t0)
		waking += time.Since(t1)
	}
	b.ReportMetric(float64(appending.Nanoseconds())/float64(b.N), "append-ns/op")
	b.ReportMetric(float64(waking.Nanoseconds())/float64(b.N), "wake-ns/op")
}
