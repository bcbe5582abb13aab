package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/baton-pub/baton/internal/poll"
)

// TestWriteLockHandedOn: a writer of one handle (a process) that finds
// the file's write lock taken announces that it waits, and the commit of
// the holder, another handle, hands the lock on through the bell, although
// the waiter would not try again for half an hour by its own clock
// (turn.go).
func TestWriteLockHandedOn(t *testing.T) {
	ctx := context.Background()
	a, b := twoHandles(t, Options{BusyTimeout: time.Hour})
	if a.othersWait() {
		t.Fatal("a writer is announced before any waits")
	}
	held, err := a.begin(ctx, a.wdb, time.Millisecond, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		tx, err := b.begin(ctx, b.wdb, time.Hour, time.Hour)
		if err == nil {
			err = tx.Rollback()
		}
		got <- err
	}()
	poll.True(t, 10*time.Second, "the waiting writer announced", a.othersWait)
	// A write that signals nothing: only the waiter makes it ring.
	if err := a.finish(ctx, held, func(*txn) ([]change, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a deadline, not a pause: the hand-off ends the wait
		t.Fatal("the waiting writer did not get the lock after the holder committed")
	}
	poll.True(t, 10*time.Second, "the announcement ended with the wait", func() bool { return !a.othersWait() })
}
