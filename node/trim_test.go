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
// only on its interval after a commit, arms no timer and holds no goroutine
// while nothing new was committed (an idle topic costs nothing), and tries a failed trim again.
func TestTrimmer(t *testing.T) {
	clock := clocktest.New(time.Unix(1000, 0))
	q := &trimQueue{calls: make(chan uint64, 10), fail: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	tr := newTrimmer(ctx, q, "t", 10, time.Second, clock, slog.New(slog.DiscardHandler))
	defer func() { cancel(); tr.wait() }()

	// step waits until the trimmer has armed its timer, then advances the
	// clock by one interval.
	step := func() {
		t.Helper()
		poll.True(t, 10*time.Second, "the trimmer to arm its timer", func() bool { return clock.Timers() == 1 })
		clock.Advance(time.Second)
	}
	// idle waits until the trimmer has no timer armed and no goroutine: it
	// waits for a commit.
	idle := func() {
		t.Helper()
		poll.True(t, 10*time.Second, "the trimmer to wait with no timer and no goroutine", func() bool {
			return clock.Timers() == 0 && tr.idle()
		})
	}
	expect := func(want ...uint64) {
		t.Helper()
		for _, w := range want {
			select {
			case got := <-q.calls:
				if got != w {
					t.Fatalf("Trim(before %d), want before %d", got, w)
				}
			case <-time.After(10 * time.Second):
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
	idle()
	tr.committed(baton.Cursor{Seq: 25}, 15)
	tr.committed(baton.Cursor{Seq: 30}, 5) // two commits in one interval: one trim
	expect()                               // nothing before the interval ends
	step()
	expect(21) // keeps 21..30
	idle()     // nothing new: no timer
	expect()
	tr.committed(baton.Cursor{Seq: 40}, 10)
	q.fail <- errors.New("store down")
	step()
	expect(31)
	step()
	expect(31) // tried again
	idle()
	expect()
}
