package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// TestWatcherFallsBehind: a watcher whose unread changes were pruned
// wakes every subscription (a lost notification must not be lost silently:
// wake-ups are hints), and one that kept up wakes only the changed topics.
// The watcher of b polls only when the test calls poll.
func TestWatcherFallsBehind(t *testing.T) {
	kept, every := changesKept, pruneEvery
	changesKept, pruneEvery = 5, 2
	defer func() { changesKept, pruneEvery = kept, every }()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	a, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, path, Options{Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
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
