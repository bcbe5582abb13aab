package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/clocktest"
	"github.com/baton-pub/baton/internal/poll"
)

// trimQueue records the trims asked of it, and answers the cursor and the
// retention it is given.
type trimQueue struct {
	calls chan uint64
	fail  chan error // an error here is returned by the next Trim

	mu        sync.Mutex
	cursor    baton.Cursor
	retention baton.Retention
	reads     int // of the retention
}

func newTrimQueue() *trimQueue {
	return &trimQueue{calls: make(chan uint64, 10), fail: make(chan error, 1)}
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

func (q *trimQueue) Cursor(context.Context, string) (baton.Cursor, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cursor, nil
}

func (q *trimQueue) Retention(context.Context, string) (baton.Retention, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reads++
	return q.retention, nil
}

// setRetention changes the topic's retention as SetRetention would.
func (q *trimQueue) setRetention(r baton.Retention) {
	q.mu.Lock()
	q.retention = r
	q.mu.Unlock()
}

// startTrimmer starts a trimmer on q until the test ends.
func startTrimmer(t *testing.T, q *trimQueue, items uint64, age time.Duration, clock baton.Clock) *trimmer {
	ctx, cancel := context.WithCancel(context.Background())
	tr := newTrimmer(ctx, q, "t", items, age, time.Second, clock, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { cancel(); tr.wait() })
	return tr
}

// expectTrims checks the trims asked of q since the last call.
func expectTrims(t *testing.T, q *trimQueue, want ...uint64) {
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

// TestTrimmer: the trimmer keeps the last retain published items, trims
// only on its interval after a commit, arms no timer while nothing new was
// committed (an idle topic costs nothing), and tries a failed trim again.
func TestTrimmer(t *testing.T) {
	clock := clocktest.New(time.Unix(1000, 0))
	q := newTrimQueue()
	tr := startTrimmer(t, q, 10, 0, clock)

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
	expect := func(want ...uint64) { t.Helper(); expectTrims(t, q, want...) }

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

// TestTrimmerAge: age retention trims what was published longer ago than
// the topic's age, counting an earlier holder's items from the cursor's
// time; it arms a timer and holds a goroutine only while it remembers
// commits to trim, and a change of the topic's retention applies at the
// first commit after the recheck interval.
func TestTrimmerAge(t *testing.T) {
	t0 := time.Unix(100000, 0)
	clock := clocktest.New(t0)
	q := newTrimQueue()
	q.cursor = baton.Cursor{Seq: 5, UpdatedAt: t0.Add(-30 * time.Minute)} // the last holder's
	q.retention = baton.Retention{Age: time.Hour}
	tr := startTrimmer(t, q, 0, 0, clock)
	timers := func(n int) {
		t.Helper()
		poll.True(t, 10*time.Second, fmt.Sprintf("the trimmer to hold %d timers", n), func() bool {
			return clock.Timers() == n && (n > 0 || tr.idle())
		})
	}

	timers(1) // the earlier holder's items expire at t0+30m
	clock.Advance(30*time.Minute - time.Second)
	expectTrims(t, q) // not early
	clock.Advance(time.Second)
	timers(1) // the interval before the trim
	clock.Advance(time.Second)
	expectTrims(t, q, 6)
	timers(0) // nothing remembered: an idle topic holds no timer

	now := clock.Now()
	tr.committed(baton.Cursor{Seq: 8, UpdatedAt: now}, 3)
	tr.committed(baton.Cursor{Seq: 9, UpdatedAt: now.Add(time.Minute)}, 1) // within age/32: one entry
	timers(1)
	clock.Advance(time.Hour + time.Minute)
	timers(1)
	clock.Advance(time.Second)
	expectTrims(t, q, 10)
	timers(0)

	// A count of its own, set while it publishes: read at the first commit
	// after the recheck interval.
	q.setRetention(baton.Retention{Items: 3, Age: baton.Unlimited})
	clock.Advance(time.Second) // the recheck interval
	tr.committed(baton.Cursor{Seq: 20, UpdatedAt: clock.Now()}, 11)
	timers(1)
	clock.Advance(time.Second)
	expectTrims(t, q, 18)
	timers(0)
}

// TestTrimmerCountWhileAgeWaits: while the trimmer waits for an age to
// pass, a commit that gives the count limit something to trim, or a
// retention changed since, is not left waiting for that age.
func TestTrimmerCountWhileAgeWaits(t *testing.T) {
	clock := clocktest.New(time.Unix(100000, 0))
	q := newTrimQueue()
	tr := startTrimmer(t, q, 10, time.Hour, clock)
	poll.True(t, 10*time.Second, "the trimmer's first look", tr.idle)
	tr.committed(baton.Cursor{Seq: 5, UpdatedAt: clock.Now()}, 5)
	poll.True(t, 10*time.Second, "the trimmer to wait for the age", func() bool { return clock.Timers() == 1 })
	tr.committed(baton.Cursor{Seq: 30, UpdatedAt: clock.Now()}, 25)
	poll.True(t, 10*time.Second, "the trimmer to wait an interval", func() bool {
		clock.Advance(0) // let a timer armed for now fire
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return !tr.waitAge && clock.Timers() == 1
	})
	clock.Advance(time.Second)
	expectTrims(t, q, 21)
}

// TestTrimmerAgeUnderSteadyTraffic: commits closer together than a slot
// (age/ageSlots) share an entry, but the entry still ages out: under
// steady traffic what is older than the age is trimmed, at most a slot
// late.
func TestTrimmerAgeUnderSteadyTraffic(t *testing.T) {
	t0 := time.Unix(200000, 0)
	clock := clocktest.New(t0)
	q := newTrimQueue()
	q.retention = baton.Retention{Age: 32 * time.Second} // slots of 1 s
	tr := startTrimmer(t, q, 0, 0, clock)
	poll.True(t, 10*time.Second, "the first look read the retention", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.age == 32*time.Second
	})
	var seq uint64
	trimmed := uint64(0)
	// A commit every 100 ms of the clock, going on until a trim of what is
	// older than the age: it must not wait for the traffic to stop.
	poll.True(t, 10*time.Second, "a trim while commits go on", func() bool {
		seq++
		tr.committed(baton.Cursor{Seq: seq, UpdatedAt: clock.Now()}, 1)
		clock.Advance(100 * time.Millisecond)
		select {
		case before := <-q.calls:
			trimmed = max(trimmed, before)
		default:
		}
		return trimmed > 1
	})
	if at := clock.Now().Sub(t0); at > 32*time.Second+3*time.Second+time.Second {
		t.Errorf("first trim at %v of the clock, want within the age (32s) plus a slot and an interval or two", at)
	}
}

// TestTrimmerHeld: a lease's trimmer reads nothing before its hold
// returns (the node's leases resuming: resume.go), then trims as usual.
func TestTrimmerHeld(t *testing.T) {
	q := newTrimQueue()
	entered, release := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	cur := baton.Cursor{Topic: "t", Seq: 10, UpdatedAt: time.Now()}
	tr := newTrimmerFrom(ctx, q, "t", cur, 3, 0, time.Millisecond, baton.SystemClock{}, slog.New(slog.DiscardHandler),
		func(context.Context) { close(entered); <-release })
	t.Cleanup(func() { cancel(); tr.wait() })
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the trimmer did not wait for its hold")
	}
	q.mu.Lock()
	reads := q.reads
	q.mu.Unlock()
	if reads != 0 {
		t.Fatalf("the retention was read %d times while held", reads)
	}
	close(release)
	expectTrims(t, q, 8)
}
