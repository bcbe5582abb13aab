package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// TestWatcherFallsBehind: a watcher whose unread changes were pruned
// wakes every subscription (a lost notification must not be lost silently:
// wake-ups are hints), and one that kept up wakes only the changed topics.
// The watcher of b polls only when the test calls poll.
func TestWatcherFallsBehind(t *testing.T) {
	ctx := context.Background()
	a, b := shortLogHandles(t)
	busy, quiet := b.Subscribe("busy", baton.SignalAppend), b.Subscribe("quiet", baton.SignalAppend)
	defer busy.Close()
	defer quiet.Close()
	appendTo := func(n int) {
		t.Helper()
		for i := range n {
			u, _ := baton.Normalize(baton.Update{ID: "x", Value: []byte(`1`), MsgID: time.Now().String() + string(rune('a'+i))})
			if _, err := a.Append(ctx, "busy", []baton.Update{u}); err != nil {
				t.Fatal(err)
			}
		}
	}
	woken := func(sub baton.Subscription) bool {
		select {
		case <-sub.C():
			return true
		default:
			return false
		}
	}

	appendTo(2)
	if seen, err := b.w.poll(ctx); err != nil || !seen {
		t.Fatalf("poll after another handle's appends: signalled %v, %v", seen, err)
	}
	if !woken(busy) || woken(quiet) {
		t.Fatal("a watcher that kept up: want busy woken, quiet not")
	}
	appendTo(20) // far more than the 5 rows kept
	if _, err := b.w.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if !woken(busy) || !woken(quiet) {
		t.Fatal("a watcher that fell behind the log: want every subscription woken")
	}
	var rows int64
	if err := a.rdb.QueryRowContext(ctx, `SELECT count(*) FROM changes`).Scan(&rows); err != nil || rows > changesKept+pruneEvery {
		t.Fatalf("changes log holds %d rows (%v), want it pruned to about %d", rows, err, changesKept)
	}
}

// shortLogHandles opens two handles on one new file, closed when t ends,
// with a changes log kept to 5 rows (pruned every 2) and no bell until
// then: b's watcher polls only when the test calls b.w.poll.
func shortLogHandles(t *testing.T) (a, b *Store) {
	t.Helper()
	kept, every := changesKept, pruneEvery
	changesKept, pruneEvery, bellOn = 5, 2, false
	t.Cleanup(func() { changesKept, pruneEvery, bellOn = kept, every, true })
	path := filepath.Join(t.TempDir(), "w.db")
	a, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = Open(context.Background(), path, Options{Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// TestChangesLogRowPerWrite: the changes log grows by one row per
// signalling write transaction, whatever the items it holds (an append of
// a hundred items, their commit), and not at all for a node lease renewal:
// the watchers of the other processes read what the writes were, not the
// items (docs/benchmarks.md, the one-topic figures after the node lease:
// at 10,000 items/s on three nodes, about 260 rows a second).
func TestChangesLogRowPerWrite(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "c.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type row struct {
		topic string
		sig   baton.Signal
	}
	var last int64
	logged := func() []row {
		t.Helper()
		rows, err := s.rdb.QueryContext(ctx, `SELECT id, topic, signals FROM changes WHERE id > ? ORDER BY id`, last)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&last, &r.topic, &r.sig); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	nl, err := s.AcquireNode(ctx, "n1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Acquire(ctx, "t", nl)
	if err != nil {
		t.Fatal(err)
	}
	logged()
	ups := make([]baton.Update, 100)
	for i := range ups {
		ups[i], _ = baton.Normalize(baton.Update{ID: "x", Value: []byte(`1`), MsgID: fmt.Sprint(i)})
	}
	if _, err := s.Append(ctx, "t", ups); err != nil {
		t.Fatal(err)
	}
	if got, want := logged(), []row{{"t", baton.SignalAppend}}; !slices.Equal(got, want) {
		t.Fatalf("an append of 100 items logged %v, want %v", got, want)
	}
	items, err := s.Items(ctx, "t", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	c := baton.Commit{Topic: "t", Epoch: l.Epoch, Holder: l.Holder, Items: items, At: time.Now()}
	if _, err := s.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, want := logged(), []row{{"t", baton.SignalCommit}}; !slices.Equal(got, want) {
		t.Fatalf("a commit of 100 items logged %v, want %v", got, want)
	}
	if _, err := s.RenewNode(ctx, nl, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := logged(); len(got) != 0 {
		t.Fatalf("a node lease renewal logged %v, want nothing", got)
	}
}
