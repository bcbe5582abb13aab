package metrics_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/leasetest"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/metrics"
	"github.com/baton-pub/baton/publisher"
	"github.com/baton-pub/baton/redis"
	"github.com/baton-pub/baton/sqlite"
)

// TestPublishOnAppendThroughTheWrapper: the node's store is wrapped for its
// metrics, and the wrapper passes publishing on append through
// (baton.AppendPublisher, and baton.RestingProposer, which Redis needs): a
// publisher on the wrapped SQLite or Redis store publishes items with
// their append, and those commits count as Commit's. On a store that
// cannot, registering does nothing.
func TestPublishOnAppendThroughTheWrapper(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		raw, err := sqlite.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "m.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		publishOnAppendWrapped(t, raw)
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t, redistest.Options{})
		raw, err := redis.Open(t.Context(), srv.URL(0), redis.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		publishOnAppendWrapped(t, raw)
	})
	other := metrics.New(metrics.Config{}).Store(memstore.New(nil)).(baton.AppendPublisher)
	other.PublishOnAppend("q", nil)() // nothing to register with: a no-op
}

func publishOnAppendWrapped(t *testing.T, raw baton.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	m := metrics.New(metrics.Config{})
	st := m.Store(raw)
	if _, ok := st.(baton.AppendPublisher); !ok {
		t.Fatal("the metrics wrapper hides baton.AppendPublisher")
	}
	l, err := leasetest.Acquire(ctx, st, "q", "n1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var last atomic.Uint64
	done := make(chan error, 1)
	go func() {
		done <- publisher.Run(ctx, st, l, publisher.Options{OnPublished: func(ps []baton.Published) { last.Store(ps[len(ps)-1].Seq) }})
	}()
	n := 0
	appendOne := func() uint64 {
		n++
		u, err := baton.Normalize(baton.Update{ID: "k", Value: []byte(fmt.Sprint(n)), MsgID: fmt.Sprint("m", n)})
		if err != nil {
			t.Fatal(err)
		}
		rs, err := st.Append(ctx, "q", []baton.Update{u})
		if err != nil {
			t.Fatal(err)
		}
		return rs[0].Seq
	}
	poll.True(t, 10*time.Second, "an item published before its Append returned", func() bool { seq := appendOne(); return last.Load() == seq })
	for range 10 {
		if seq := appendOne(); last.Load() != seq {
			t.Fatalf("item %d not published when its Append returned", seq)
		}
	}
	if got, want := value(t, m, "baton_items_published_total", nil), float64(n); got != want {
		t.Errorf("baton_items_published_total = %v, want %v (every item appended)", got, want)
	}
	if got := value(t, m, "baton_items_published_on_append_total", nil); got < 10 || got > float64(n) {
		t.Errorf("baton_items_published_on_append_total = %v, want at least the 10 published with their append, at most %d", got, n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
