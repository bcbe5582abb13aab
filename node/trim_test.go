package node

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/clocktest"
	"github.com/baton-pub/baton/internal/poll"
)

// trimQueue records the trims asked of it; only Trim is implemented.
type trimQueue struct {
	baton.Queue
	calls chan uint64
	fail  chan error // an error here is returned by the next Trim
}

func (q *trimQueue) Trim(_ context.Context, _ string, before uint64) (int, error) {
	q.calls <- before
	select {
	case err := <-q.fail:
		return 0, err
	default:
		return 0, nil
	}
}

// TestTrimmer: the trimmer keeps the last retain published items, trims
// only on its interval, not again while nothing new was committed, and
// tries a failed trim again.
func TestTrimmer(t *testing.T) {
	clock := clocktest.New(time.Unix(1000, 0))
	q := &trimQueue{calls: make(chan uint64, 10), fail: make(chan error, 1)}
	tr := newTrimmer(q, "t", 10, time.Second, clock, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tr.run(ctx) }()
	defer func() { cancel(); <-done }()

	// tick advances the clock by one interval and waits until the
	// trimmer has armed its timer again: its step is over.
	tick := func() {
		t.Helper()
		poll.True(t, 10*time.Second, "the trimmer to arm its timer", func() bool { return clock.Timers() == 1 })
		clock.Advance(time.Second)
		poll.True(t, 10*time.Second, "the trimmer to finish its step", func() bool { return clock.Timers() == 1 })
	}
	expect := func(want ...uint64) {
		t.Helper()
		for _, w := range want {
			select {
			case got := <-q.calls:
				if got != w {
					t.Fatalf("Trim(before %d), want before %d", got, w)
				}
			default:
				t.Fatalf("no Trim, want Trim(before %d)", w)
			}
		}
		select {
		case got := <-q.calls:
			t.Fatalf("an unexpected Trim(before %d)", got)
		default:
		}
	}

	tr.committed(baton.Cursor{Seq: 10}, 10) // no more than retain published
	tick()
	expect()
	tr.committed(baton.Cursor{Seq: 25}, 15)
	tr.committed(baton.Cursor{Seq: 30}, 5) // two commits in one interval: one trim
	expect()                               // nothing before the interval ends
	tick()
	expect(21) // keeps 21..30
	tick()
	expect() // nothing new
	tr.committed(baton.Cursor{Seq: 40}, 10)
	q.fail <- errors.New("store down")
	tick()
	expect(31)
	tick()
	expect(31) // tried again
	tick()
	expect()
}
