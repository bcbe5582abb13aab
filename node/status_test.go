package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

// countedKey marks the context of the calls countingStore counts: the
// status read's, not the electors' and publishers' running beside it.
type countedKey struct{}

// countingStore counts the reads made with a counted context.
type countingStore struct {
	baton.Store
	reads atomic.Int64
}

func (s *countingStore) count(ctx context.Context) {
	if ctx.Value(countedKey{}) != nil {
		s.reads.Add(1)
	}
}

func (s *countingStore) Topics(ctx context.Context) ([]string, error) {
	s.count(ctx)
	return s.Store.Topics(ctx)
}

func (s *countingStore) Topic(ctx context.Context, topic string) (baton.TopicInfo, error) {
	s.count(ctx)
	return s.Store.Topic(ctx, topic)
}

func (s *countingStore) Lock(ctx context.Context, topic string) (baton.LockState, error) {
	s.count(ctx)
	return s.Store.Lock(ctx, topic)
}

func (s *countingStore) Cursor(ctx context.Context, topic string) (baton.Cursor, error) {
	s.count(ctx)
	return s.Store.Cursor(ctx, topic)
}

func (s *countingStore) Members(ctx context.Context) ([]baton.Member, error) {
	s.count(ctx)
	return s.Store.Members(ctx)
}

func (s *countingStore) Handovers(ctx context.Context, topic string, limit int) ([]baton.ReleaseRecord, error) {
	s.count(ctx)
	return s.Store.Handovers(ctx, topic, limit)
}

// TestStatusReadsBounded: Status reads the store a number of times that
// does not grow with the topics in the store, nor with the topics the node
// publishes past stallBatch: the members, three reads per topic of its
// page and two per topic of the stall check (the topics' names are those
// the node listed last). Its counts are those of the whole store all the
// same.
func TestStatusReadsBounded(t *testing.T) {
	const page, publishes = 10, 2*stallBatch + 6
	want := int64(1 + 3*page + 2*stallBatch)
	for _, topics := range []int{publishes + 20, 2000} {
		t.Run(fmt.Sprint(topics), func(t *testing.T) {
			store := &countingStore{Store: memstore.New(nil)}
			ctx := context.Background()
			u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
			for i := range topics {
				if _, err := store.Append(ctx, fmt.Sprintf("t%05d", i), []baton.Update{u}); err != nil {
					t.Fatal(err)
				}
			}
			n, err := New(store, Config{Node: "a", Addr: "a:1", TTL: time.Second, MaxLeases: publishes})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			counted := context.WithValue(ctx, countedKey{}, true)
			var st wire.Status
			poll.True(t, 30*time.Second, "the node publishing its most topics, as its heartbeat says", func() bool {
				st, err = n.Status(ctx, page)
				return err == nil && st.Counts.Publishing == publishes && st.Counts.Held == publishes
			})
			before := store.reads.Load()
			if st, err = n.Status(counted, page); err != nil {
				t.Fatal(err)
			}
			if got := store.reads.Load() - before; got != want {
				t.Errorf("Status at %d topics, %d published here: %d store reads, want %d", topics, publishes, got, want)
			}
			if len(st.Topics) != page || st.Topics[0].Topic != "t00000" || st.TopicsNext != st.Topics[page-1].Topic {
				t.Errorf("the first page: %d topics from %q, next %q", len(st.Topics), st.Topics[0].Topic, st.TopicsNext)
			}
			if c := st.Counts; c.Topics != topics || c.Publishing != publishes || c.Held != publishes || c.Unheld != topics-publishes {
				t.Errorf("counts %+v", c)
			}
			before = store.reads.Load()
			if _, err := n.TopicStatuses(counted, []string{"t00001", "t00007"}); err != nil {
				t.Fatal(err)
			}
			if got := store.reads.Load() - before; got != 6 {
				t.Errorf("TopicStatuses of two topics: %d store reads, want 6", got)
			}
		})
	}
}

// TestStallCheckGoesRound: the stall check reads at most stallBatch of the
// topics the node publishes at a time, going round all of them, and
// forgets those it no longer publishes.
func TestStallCheckGoesRound(t *testing.T) {
	var h health
	var publishing []string
	for i := range 150 {
		publishing = append(publishing, fmt.Sprintf("t%03d", i))
	}
	h.progress("gone", true, 1, 1, time.Now(), time.Second)
	var seen []string
	for range 3 {
		due := h.due(publishing, 64)
		if len(due) != 64 {
			t.Fatalf("a batch of %d topics, want 64", len(due))
		}
		seen = append(seen, due...)
	}
	if _, ok := h.cursors["gone"]; ok {
		t.Error("a topic no longer published is still tracked")
	}
	slices.Sort(seen)
	seen = slices.Compact(seen)
	if len(seen) != 150 {
		t.Errorf("three batches of 64 covered %d of 150 topics", len(seen))
	}
	if due := h.due(publishing[:10], 64); len(due) != 10 {
		t.Errorf("10 topics published: a batch of %d", len(due))
	}
}

// TestStatusSeesNewTopics: the topics Status counts and pages are those
// the node knows without reading the store, and a topic created after the
// node started is among them once the node hears of it.
func TestStatusSeesNewTopics(t *testing.T) {
	store := memstore.New(nil)
	ctx := context.Background()
	u, _ := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
	if _, err := store.Append(ctx, "b", []baton.Update{u}); err != nil {
		t.Fatal(err)
	}
	n, err := New(store, Config{Node: "a", Addr: "a:1", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	poll.True(t, 10*time.Second, "the node to list the topics", func() bool {
		_, listed := n.topics.names()
		return listed
	})
	if st, err := n.Status(ctx, 1); err != nil || st.Counts.Topics != 1 {
		t.Fatalf("one topic: %+v %v", st.Counts, err)
	}
	if _, err := store.Append(ctx, "a", []baton.Update{u}); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "the new topic counted and first in the page", func() bool {
		st, err := n.Status(ctx, 1)
		return err == nil && st.Counts.Topics == 2 && len(st.Topics) == 1 && st.Topics[0].Topic == "a" && st.TopicsNext == "a"
	})
}
