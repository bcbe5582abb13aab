package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/sqlite"
)

// BenchmarkMassHandover is the store's share of a crash hand-over of many
// topics (`baton bench --scenario topics`, the kill): a file of 10,000
// topics, a third of them held by a node that ends crashed; a survivor's
// handle then acquires them, appends one item to each and commits it,
// every write of a phase issued at once (as a node's electors, sources and
// publishers do). It reports each phase's time per topic: the floor under
// the figure of the full run, with no other process and no CPU shared.
func BenchmarkMassHandover(b *testing.B) {
	const topics, held = 10000, 3334
	ctx := b.Context()
	var acquire, appends, commits, release time.Duration
	for i := range b.N {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), fmt.Sprintf("h%d.db", i))
		s, err := sqlite.Open(ctx, "sqlite://"+path, sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		names := make([]string, topics)
		for j := range names {
			names[j] = fmt.Sprintf("tp-%05d", j)
		}
		dead, err := s.AcquireNode(ctx, "n1", time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		each(b, names[:held], func(topic string) error {
			if _, err := s.Append(ctx, topic, []baton.Update{{ID: "a", Value: []byte(`1`), MsgID: topic + "-1"}}); err != nil {
				return err
			}
			l, err := s.Acquire(ctx, topic, dead)
			if err != nil {
				return err
			}
			return commitNext(ctx, s, l, 0)
		})
		each(b, names[held:], func(topic string) error {
			_, err := s.Append(ctx, topic, []baton.Update{{ID: "a", Value: []byte(`1`), MsgID: topic + "-1"}})
			return err
		})
		live, err := s.AcquireNode(ctx, "n2", time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		t0 := time.Now()
		if _, err := s.ReleaseNode(ctx, dead, baton.ReasonCrashed); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		leases := make(map[string]baton.Lease, held)
		var mu sync.Mutex
		each(b, names[:held], func(topic string) error {
			l, err := s.Acquire(ctx, topic, live)
			mu.Lock()
			leases[topic] = l
			mu.Unlock()
			return err
		})
		t2 := time.Now()
		each(b, names[:held], func(topic string) error {
			_, err := s.Append(ctx, topic, []baton.Update{{ID: "a", Value: []byte(`2`), MsgID: topic + "-2"}})
			return err
		})
		t3 := time.Now()
		each(b, names[:held], func(topic string) error { return commitNext(ctx, s, leases[topic], 1) })
		t4 := time.Now()
		release += t1.Sub(t0)
		acquire += t2.Sub(t1)
		appends += t3.Sub(t2)
		commits += t4.Sub(t3)
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*held) }
	b.ReportMetric(float64(release.Milliseconds())/float64(b.N), "release-ms")
	b.ReportMetric(per(acquire), "acquire-ns/topic")
	b.ReportMetric(per(appends), "append-ns/topic")
	b.ReportMetric(per(commits), "commit-ns/topic")
}

// each runs fn for every topic, all at once, and fails b on an error.
func each(b *testing.B, topics []string, fn func(topic string) error) {
	var wg sync.WaitGroup
	errs := make(chan error, len(topics))
	for _, t := range topics {
		wg.Go(func() {
			if err := fn(t); err != nil {
				errs <- fmt.Errorf("%s: %w", t, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// commitNext commits the topic's items after seq under l, as a publisher
// does.
func commitNext(ctx context.Context, s *sqlite.Store, l baton.Lease, seq uint64) error {
	items, err := s.Items(ctx, l.Topic, seq, 100)
	if err != nil {
		return err
	}
	_, err = s.Commit(ctx, baton.Commit{Topic: l.Topic, Epoch: l.Epoch, Holder: l.Holder, PrevSeq: seq, Items: items, At: time.Now()})
	return err
}
