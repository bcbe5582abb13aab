package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// TestBellWakesOtherProcess: a signalling write by one handle (a process)
// wakes another handle's subscribers through the bell, although that
// handle's watcher would not poll for an hour.
func TestBellWakesOtherProcess(t *testing.T) {
	ctx := context.Background()
	a, b := twoHandles(t, Options{Poll: time.Hour})
	sub := b.Subscribe("x", baton.SignalAppend)
	defer sub.Close()
	for i := range 3 {
		u, _ := baton.Normalize(baton.Update{ID: "k", Value: []byte(`1`), MsgID: string(rune('a' + i))})
		if _, err := a.Append(ctx, "x", []baton.Update{u}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-sub.C():
		case <-time.After(30 * time.Second): // a deadline, not a pause: the wake-up ends the wait
			t.Fatalf("append %d: the other handle's subscriber was not woken", i)
		}
	}
}

// twoHandles opens two handles on one new file (two processes), the
// second with opts; both are closed when t ends.
func twoHandles(t *testing.T, opts Options) (*Store, *Store) {
	path := filepath.Join(t.TempDir(), "b.db")
	a, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}
