package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/publisher"
	"github.com/baton-pub/baton/sqlite"
)

// BenchmarkOpenLoop is the store's share of `baton bench --scenario
// latency` at 1k items/s, with the disk's fsync (sync=full, as serve
// runs): single-item appends due every millisecond, spread over the
// handles (nodes), a real publisher (publisher.Run) on the first handle,
// and the last handle reading what is published, as its hub does. It
// reports the latency from each item's due time to its acknowledgement,
// to its publisher's commit (pub-own for the items appended through the
// publisher's handle, which it may publish on append, pub-other for the
// others) and to the follower's read, so that the critical path (append,
// commit, change detection, read) can be measured without HTTP and terminals
// (docs/benchmarks.md, "SQLite latency and single-item ingest").
// Run with -benchtime=3000x (items). It also reports the process's CPU
// per item, and the longest node lease renewal of the handles, which
// renew every 100 ms meanwhile.
func BenchmarkOpenLoop(b *testing.B) {
	for _, nodes := range []int{1, 3} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			openLoop(b, nodes, 1000)
		})
	}
}

func openLoop(b *testing.B, nodes int, rate float64) {
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	path := filepath.Join(b.TempDir(), "b.db")
	hs := make([]*sqlite.Store, nodes)
	for i := range hs {
		s, err := sqlite.Open(ctx, "sqlite://"+path, sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		hs[i] = s
	}
	l := acquireForBench(b, hs[0], "t")
	pubDone := make(chan error, 1)
	// pubOwn and pubOther: from due time to the publisher's commit, for
	// the items appended through its own handle and through the others.
	pubOwn := hdrhistogram.New(1, int64(10*time.Second), 3)
	pubOther := hdrhistogram.New(1, int64(10*time.Second), 3)
	onPublished := func(ps []baton.Published) {
		now := time.Now().UnixNano()
		for _, p := range ps {
			due, _ := strconv.ParseInt(string(p.Value), 10, 64)
			k, _ := strconv.Atoi(strings.TrimPrefix(p.MsgID, "m-"))
			if k%nodes == 0 {
				pubOwn.RecordValue(now - due)
			} else {
				pubOther.RecordValue(now - due)
			}
		}
	}
	go func() { pubDone <- publisher.Run(ctx, hs[0], l, publisher.Options{OnPublished: onPublished}) }()
	defer func() { cancel(); <-pubDone }()

	// Every handle renews a node lease every 100 ms, as a node does
	// (TTL/4 of serve's default 2 s is 500 ms): renewals must not starve
	// behind the appends and commits (sqlite/priority.go).
	var renewMu sync.Mutex
	var renewMax time.Duration
	for i, h := range hs {
		nl, err := h.AcquireNode(ctx, fmt.Sprintf("n%d", i), time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if nl, err = h.RenewNode(ctx, nl, time.Minute); err != nil {
					return
				}
				d := time.Since(t0)
				renewMu.Lock()
				renewMax = max(renewMax, d)
				renewMu.Unlock()
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	follower := hs[nodes-1]
	sub := follower.Subscribe("t", baton.SignalCommit)
	defer sub.Close()
	delivered := hdrhistogram.New(1, int64(10*time.Second), 3)
	acked := hdrhistogram.New(1, int64(10*time.Second), 3)
	var ackMu sync.Mutex
	readDone := make(chan struct{})
	n := b.N
	go func() {
		defer close(readDone)
		var read uint64
		for int(read) < n {
			select {
			case <-sub.C():
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			for {
				ps, err := follower.Published(ctx, "t", read, 1000)
				if err != nil || len(ps) == 0 {
					break
				}
				now := time.Now().UnixNano()
				for _, it := range ps {
					due, _ := strconv.ParseInt(string(it.Value), 10, 64)
					delivered.RecordValue(now - due)
				}
				read = ps[len(ps)-1].Seq
			}
		}
	}()

	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	start := time.Now().Add(10 * time.Millisecond)
	b.ResetTimer()
	cpu0 := cpuTime()
	for k := range n {
		due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		time.Sleep(time.Until(due))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d := due.UnixNano()
			u := baton.Update{ID: "q", Value: []byte(strconv.FormatInt(d, 10)), MsgID: "m-" + strconv.Itoa(k)}
			if _, err := hs[k%nodes].Append(ctx, "t", []baton.Update{u}); err != nil {
				b.Error(err)
				return
			}
			ackMu.Lock()
			acked.RecordValue(time.Now().UnixNano() - d)
			ackMu.Unlock()
		})
	}
	wg.Wait()
	select {
	case <-readDone:
	case <-time.After(10 * time.Second):
		b.Fatal("the follower did not read every item within 10s")
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	ms := func(v int64) float64 { return float64(v) / 1e6 }
	b.ReportMetric(ms(acked.ValueAtQuantile(50)), "ack-p50-ms")
	b.ReportMetric(ms(acked.ValueAtQuantile(99)), "ack-p99-ms")
	b.ReportMetric(ms(delivered.ValueAtQuantile(50)), "read-p50-ms")
	b.ReportMetric(ms(delivered.ValueAtQuantile(99)), "read-p99-ms")
	b.ReportMetric(ms(pubOwn.ValueAtQuantile(50)), "pub-own-p50-ms")
	if nodes > 1 {
		b.ReportMetric(ms(pubOther.ValueAtQuantile(50)), "pub-other-p50-ms")
		b.ReportMetric(ms(pubOther.ValueAtQuantile(99)), "pub-other-p99-ms")
	}
	// The process's CPU per item (every handle's): what the hand-off of
	// the write lock costs in tries, and what a loaded machine distorts
	// least.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/item")
	renewMu.Lock()
	b.ReportMetric(ms(int64(renewMax)), "renew-max-ms")
	renewMu.Unlock()
}
