//go:build unix

package http

import (
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/hub"
	"github.com/baton-pub/baton/internal/leasetest"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
	"github.com/baton-pub/baton/sqlite"
	"github.com/baton-pub/baton/wire"
)

// BenchmarkSnapshotEvents measures how fast one node serves a snapshot of
// 100,000 data ids (issue 15's target: 200,000 ids/s), on each engine: a
// GET events?snapshot=1 through a real HTTP server, read as events up to
// snapshot_end. docs/benchmarks.md ("Snapshots") has the figures and the
// command:
//
//	go test -run '^$' -bench SnapshotEvents -benchtime 5x ./http
func BenchmarkSnapshotEvents(b *testing.B) {
	const ids = 100_000
	engines := []struct {
		name string
		open func(b *testing.B) baton.Store
	}{
		{"memstore", func(*testing.B) baton.Store { return memstore.New(nil) }},
		{"sqlite", func(b *testing.B) baton.Store {
			st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "b.db"), sqlite.Options{Sync: "normal"})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
		{"redis", func(b *testing.B) baton.Store {
			st, err := redis.Open(context.Background(), redistest.Start(b, redistest.Options{}).URL(0), redis.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	}
	for _, eng := range engines {
		b.Run(eng.name, func(b *testing.B) {
			st := eng.open(b)
			b.Cleanup(func() { st.Close() })
			fillSnapshot(b, st, ids)
			h := hub.New(st, hub.Options{})
			if err := h.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			srv := mustServer(b, Config{Store: st, Hub: h})
			ts := httptest.NewServer(srv)
			b.Cleanup(func() { ts.CloseClientConnections(); ts.Close(); srv.Close(); h.Close() })
			url := eventsURL(ts.URL, testTopic, "snapshot=1")
			start, cpu := time.Now(), cpuTime()
			for b.Loop() {
				if got := readSnapshot(b, url); got != ids {
					b.Fatalf("snapshot of %d ids, want %d", got, ids)
				}
			}
			b.ReportMetric(float64(ids*b.N)/time.Since(start).Seconds(), "ids/s")
			// Per CPU second of the process (server, store client and
			// the reader together): the figure a loaded machine distorts
			// least.
			b.ReportMetric(float64(ids*b.N)/(cpuTime()-cpu).Seconds(), "ids/cpu-s")
		})
	}
}

// cpuTime is the process's CPU time so far (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fillSnapshot publishes n ids of ~100-byte values to testTopic.
func fillSnapshot(b *testing.B, st baton.Store, n int) {
	ctx := context.Background()
	lease, err := leasetest.Acquire(ctx, st, testTopic, "node-a", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	pad := strings.Repeat("x", 80)
	for from := 0; from < n; from += 1000 {
		ups := make([]baton.Update, 0, 1000)
		for i := from; i < min(from+1000, n); i++ {
			ups = append(ups, baton.Update{ID: fmt.Sprintf("quote.%06d", i), Value: json.RawMessage(fmt.Sprintf(`{"px":%d,"p":%q}`, i, pad)), MsgID: fmt.Sprint("m", i)})
		}
		rs, err := st.Append(ctx, testTopic, ups)
		if err != nil {
			b.Fatal(err)
		}
		its, err := st.Items(ctx, testTopic, rs[0].Seq-1, len(ups))
		if err == nil {
			_, err = st.Commit(ctx, baton.Commit{Topic: testTopic, Epoch: lease.Epoch, Holder: lease.Holder, PrevSeq: rs[0].Seq - 1, Items: its, At: time.Now()})
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// readSnapshot opens a stream with a snapshot and counts its items up to
// snapshot_end.
func readSnapshot(b *testing.B, url string) int {
	s := openStream(b, nethttp.DefaultClient, url, "")
	defer s.close()
	er := wire.NewEventReader(s.resp.Body, 0)
	for n := 0; ; n++ {
		ev, err := er.Next()
		if err != nil {
			b.Fatal(err)
		}
		if ev.Type == wire.EventSnapshotEnd {
			return n
		}
	}
}
