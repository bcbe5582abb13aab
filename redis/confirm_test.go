package redis_test

import (
	"errors"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
)

// TestUnacknowledgedIsNotRead: with wait_replicas, a commit the replica did
// not acknowledge is on the master (its caller was told unavailable), and a
// failover may drop it. No reader that serves terminals, feeds witnesses or
// decides a hand-over may see it: the cursor, published items, leaves,
// the lock and snapshots are unavailable until the replica has it, then
// show it (redis/confirm.go).
func TestUnacknowledgedIsNotRead(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	replica := redistest.Start(t, redistest.Options{ReplicaOf: master.Addr})
	waitAcked(t, master)
	// With the replica paused, writes and reads give up after 300 ms. In
	// sync, a replica acknowledges in well under a millisecond, but on a
	// loaded machine not always within 300 ms (the first AcquireNode of a
	// CI run once did not): the writes and reads that must succeed go
	// through handles whose timeout only a missing replica would reach.
	const wait, inSync = "?wait_replicas=1&wait_timeout=300ms", "?wait_replicas=1&wait_timeout=10s"
	w := open(t, master.URL(0)+wait, redis.Options{})    // the publisher
	r := open(t, master.URL(0)+wait, redis.Options{})    // a hub, a witness, a standby
	ws := open(t, master.URL(0)+inSync, redis.Options{}) // the publisher, in sync
	rs := open(t, master.URL(0)+inSync, redis.Options{}) // the reader, in sync
	raw := open(t, master.URL(0), redis.Options{})       // what the master holds
	ctx := t.Context()
	const topic = "confirmed"

	l := acquire(t, ws, topic, "n1", time.Minute)
	if _, err := ws.Append(ctx, topic, updates(t, 3)); err != nil {
		t.Fatal(err)
	}
	items, err := ws.Items(ctx, topic, 0, 10)
	if err != nil || len(items) != 3 {
		t.Fatalf("Items: %d, %v", len(items), err)
	}
	commit := func(s *redis.Store, prev uint64, its []baton.Item) error {
		_, err := s.Commit(ctx, baton.Commit{Topic: topic, Epoch: l.Epoch, Holder: l.Holder, PrevSeq: prev, Items: its, At: time.Now()})
		return err
	}
	if err := commit(ws, 0, items[:1]); err != nil {
		t.Fatal(err)
	}
	if ps, err := rs.Published(ctx, topic, 0, 10); err != nil || len(ps) != 1 {
		t.Fatalf("Published with the replica in sync: %d, %v; want 1", len(ps), err)
	}

	replica.Pause()
	if err := commit(w, 1, items[1:]); !errors.Is(err, baton.ErrUnavailable) {
		t.Fatalf("Commit with the replica paused: %v, want ErrUnavailable", err)
	}
	// The commit is on the master: the case that matters.
	if cur, err := raw.Cursor(ctx, topic); err != nil || cur.Seq != 3 {
		t.Fatalf("the master's cursor without confirmation: %d, %v; want 3", cur.Seq, err)
	}
	readsOf := func(r *redis.Store) map[string]func() error {
		return map[string]func() error{
			"Cursor":    func() error { _, err := r.Cursor(ctx, topic); return err },
			"Published": func() error { _, err := r.Published(ctx, topic, 1, 10); return err },
			"Leaves":    func() error { _, err := r.Leaves(ctx, topic, 1, 10); return err },
			"Lock":      func() error { _, err := r.Lock(ctx, topic); return err },
			"Snapshot": func() error {
				_, _, _, err := r.Snapshot(ctx, topic, "", 10)
				return err
			},
		}
	}
	for name, read := range readsOf(r) {
		if err := read(); !errors.Is(err, baton.ErrUnavailable) {
			t.Errorf("%s with an unacknowledged commit on the master: %v, want ErrUnavailable", name, err)
		}
	}

	replica.Resume()
	poll.True(t, 30*time.Second, "the commit confirmed once the replica has it", func() bool {
		ps, err := r.Published(ctx, topic, 0, 10)
		return err == nil && len(ps) == 3
	})
	for name, read := range readsOf(rs) {
		if err := read(); err != nil {
			t.Errorf("%s with the replica back: %v", name, err)
		}
	}
	if cur, err := rs.Cursor(ctx, topic); err != nil || cur.Seq != 3 {
		t.Errorf("Cursor with the replica back: %d, %v; want 3", cur.Seq, err)
	}
}
