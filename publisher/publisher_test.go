package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/clocktest"
	"github.com/baton-pub/baton/internal/leasetest"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/testlog"
	"github.com/baton-pub/baton/publisher"
)

func appendN(t *testing.T, st baton.Store, topic string, from, n int) {
	t.Helper()
	var us []baton.Update
	for i := from; i < from+n; i++ {
		u, err := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(fmt.Sprint(i)), MsgID: fmt.Sprint("m", i)})
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	if _, err := st.Append(context.Background(), topic, us); err != nil {
		t.Fatal(err)
	}
}

func waitCursor(t *testing.T, st baton.Store, topic string, seq uint64) baton.Cursor {
	t.Helper()
	var c baton.Cursor
	poll.Until(t, 10*time.Second, fmt.Sprintf("the cursor at %d", seq), func() error {
		var err error
		if c, err = st.Cursor(context.Background(), topic); err == nil && c.Seq < seq {
			err = fmt.Errorf("cursor at %d", c.Seq)
		}
		return err
	})
	return c
}

// TestPublishAndResume: a publisher commits every item in order in
// batches; after a hand-over the next one resumes exactly after the
// cursor (docs/design.md, step 5), and the ledger has one leaf per item with the epoch
// and publisher that committed it.
func TestPublishAndResume(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(baton.SystemClock{})
	appendN(t, st, "t", 0, 250)
	l1, err := leasetest.Acquire(ctx, st, "t", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	run1, stop1 := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- publisher.Run(run1, st, l1, publisher.Options{Batch: 100}) }()
	waitCursor(t, st, "t", 250)
	stop1()
	if err := <-done; err != nil {
		t.Fatalf("publisher a: %v", err)
	}
	if err := st.Release(ctx, l1, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}

	appendN(t, st, "t", 250, 50)
	l2, err := leasetest.Acquire(ctx, st, "t", "b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := publisher.Resume(ctx, st, "t")
	if err != nil || cur.Seq != 250 {
		t.Fatalf("resume point = %+v, %v; want seq 250", cur, err)
	}
	run2, stop2 := context.WithCancel(ctx)
	defer stop2()
	go func() { done <- publisher.Run(run2, st, l2, publisher.Options{Batch: 7}) }()
	appendN(t, st, "t", 300, 10) // live appends are picked up too
	waitCursor(t, st, "t", 310)

	leaves, err := st.Leaves(ctx, "t", 0, 1000)
	if err != nil || len(leaves) != 310 {
		t.Fatalf("leaves: %d, %v", len(leaves), err)
	}
	items, _ := st.Items(ctx, "t", 0, 1000)
	for i, l := range leaves {
		want := baton.Leaf{Seq: uint64(i + 1), ItemHash: items[i].Hash, Epoch: l1.Epoch, Publisher: "a"}
		if i >= 250 {
			want.Epoch, want.Publisher = l2.Epoch, "b"
		}
		if l.Seq != want.Seq || l.ItemHash != want.ItemHash || l.Epoch != want.Epoch || l.Publisher != want.Publisher {
			t.Fatalf("leaf %d = %+v, want %+v", i, l, want)
		}
	}
}

// TestFencedPublisherStops: a publisher whose lease was taken over gets
// an error wrapping ErrLeaseLost at its next commit and commits nothing.
func TestFencedPublisherStops(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(baton.SystemClock{})
	appendN(t, st, "t", 0, 5)
	l1, err := leasetest.Acquire(ctx, st, "t", "a", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// The lease lapses and b takes over before a publishes anything.
	var l2 baton.Lease
	poll.Until(t, 10*time.Second, "a's lease to lapse", func() (err error) {
		l2, err = leasetest.Acquire(ctx, st, "t", "b", time.Minute)
		return err
	})
	var logs testlog.Buffer
	err = publisher.Run(ctx, st, l1, publisher.Options{Logger: logs.Logger()})
	if !errors.Is(err, baton.ErrLeaseLost) {
		t.Fatalf("zombie publisher returned %v, want ErrLeaseLost", err)
	}
	if c, _ := st.Cursor(ctx, "t"); c.Seq != 0 {
		t.Fatalf("zombie moved the cursor to %d", c.Seq)
	}
	_ = l2
	// The refusal is logged once, at info, with the topic, the epoch and
	// where the publisher stood (docs/operations.md, "Logs").
	if n := strings.Count(logs.String(), "fenced: stopping"); n != 1 {
		t.Fatalf("the fence refusal logged %d times:\n%s", n, logs.String())
	}
	for _, want := range []string{"level=INFO", "topic=t", fmt.Sprintf("epoch=%d", l1.Epoch), "cursor=0", "published_for="} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the fence refusal's line lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestBatchGrowsWithBacklog: a publisher behind a backlog doubles its
// commits after each full one, up to Batch, and a publisher that has
// caught up goes back to small commits.
func TestBatchGrowsWithBacklog(t *testing.T) {
	ctx := t.Context()
	st := memstore.New(baton.SystemClock{})
	appendN(t, st, "t", 0, 10000)
	l, err := leasetest.Acquire(ctx, st, "t", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	commits := make(chan int, 100)
	run, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- publisher.Run(run, st, l, publisher.Options{Batch: 4000, OnCommit: func(_ baton.Cursor, n int) { commits <- n }})
	}()
	waitCursor(t, st, "t", 10000)
	appendN(t, st, "t", 10000, 1500)
	waitCursor(t, st, "t", 11500)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(commits)
	var got []int
	for n := range commits {
		got = append(got, n)
	}
	want := []int{1000, 2000, 4000, 3000, 1000, 500}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("commit sizes %v, want %v", got, want)
	}
}

// TestCheckedBeforeCommit: a publisher given a check of its starting
// cursor (Options.Checked) commits nothing until the check is done, and
// stops on a failed one with nothing committed.
func TestCheckedBeforeCommit(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(baton.SystemClock{})
	appendN(t, st, "t", 0, 5)
	l, err := leasetest.Acquire(ctx, st, "t", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cur := baton.Cursor{Topic: "t"}
	bad := make(chan error, 1)
	bad <- errors.New("index puts the hash elsewhere")
	// Bounded: a publisher that ignored the check would publish and wait
	// for more.
	first, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = publisher.Run(first, st, l, publisher.Options{From: &cur, Checked: bad})
	if err == nil || !strings.Contains(err.Error(), "index puts the hash elsewhere") {
		t.Fatalf("Run with a failed check = %v, want the check's error", err)
	}
	if c, _ := st.Cursor(ctx, "t"); c.Seq != 0 {
		t.Fatalf("cursor at %d after a failed check, want nothing committed", c.Seq)
	}

	// A check that passes, however late, lets the items be published.
	pending := make(chan error, 1)
	run, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- publisher.Run(run, st, l, publisher.Options{From: &cur, Checked: pending}) }()
	pending <- nil
	waitCursor(t, st, "t", 5)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestResumedOnce: Resumed is called once, after the first commit of a
// backlog (the cursor has moved when it is called), or at the first read
// of an empty queue.
func TestResumedOnce(t *testing.T) {
	for _, backlog := range []int{0, 5} {
		st := memstore.New(baton.SystemClock{})
		if backlog > 0 {
			appendN(t, st, "t", 0, backlog)
		}
		calls, stop := runResumed(t, st, publisher.Options{})
		select {
		case seq := <-calls:
			if seq != uint64(backlog) {
				t.Fatalf("backlog %d: resumed with the cursor at %d", backlog, seq)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("backlog %d: not resumed", backlog)
		}
		// More commits call it no more.
		appendN(t, st, "t", backlog, 3)
		waitCursor(t, st, "t", uint64(backlog+3))
		stop()
		if n := len(calls); n != 0 {
			t.Fatalf("backlog %d: resumed %d more times", backlog, n)
		}
	}
}

// runResumed runs a publisher of topic t on st under a new lease, with o
// and a Resumed that sends the cursor's seq when it is called. stop ends
// the publisher and fails t if it returned an error.
func runResumed(t *testing.T, st baton.Store, o publisher.Options) (calls chan uint64, stop func()) {
	t.Helper()
	ctx := context.Background()
	l, err := leasetest.Acquire(ctx, st, "t", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	calls = make(chan uint64, 10)
	o.Resumed = func() {
		c, _ := st.Cursor(ctx, "t")
		calls <- c.Seq
	}
	run, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- publisher.Run(run, st, l, o) }()
	return calls, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// itemsCounter counts the store's Items reads from before seq minAfter.
type itemsCounter struct {
	baton.Store
	minAfter uint64
	below    atomic.Int64 // reads after a seq below minAfter
	reads    atomic.Int64 // every read
}

func (s *itemsCounter) Items(ctx context.Context, topic string, after uint64, limit int) ([]baton.Item, error) {
	s.reads.Add(1)
	if after < s.minAfter {
		s.below.Add(1)
	}
	return s.Store.Items(ctx, topic, after, limit)
}

// TestOneReadPerTrickledItem: a publisher that keeps up with items
// appended one at a time reads the queue once per item: a read that found
// the queue drained is not repeated after its commit, since anything
// appended since is signalled. Every item is still published, in order.
func TestOneReadPerTrickledItem(t *testing.T) {
	ctx := t.Context()
	mem := memstore.New(baton.SystemClock{})
	st := &itemsCounter{Store: mem}
	l, err := leasetest.Acquire(ctx, mem, "t", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	// No fallback poll within the test: every read is the loop's own.
	go func() { done <- publisher.Run(run, st, l, publisher.Options{Poll: time.Hour}) }()
	waitReads := func(n int64) {
		poll.Until(t, 10*time.Second, fmt.Sprintf("%d reads of the queue", n), func() error {
			if got := st.reads.Load(); got < n {
				return fmt.Errorf("%d reads", got)
			}
			return nil
		})
	}
	waitReads(1) // the first read, after the subscription: the queue is empty
	const n = 30
	for i := range n {
		appendN(t, mem, "t", i, 1)
		waitCursor(t, mem, "t", uint64(i+1))
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The first read, then one per item (two per item before).
	if got := st.reads.Load(); got > n+1 {
		t.Errorf("%d reads of the queue for %d items appended one at a time, want at most %d", got, n, n+1)
	}
	ps, err := mem.Published(ctx, "t", 0, 100)
	if err != nil || len(ps) != n || ps[n-1].Seq != n {
		t.Fatalf("published %d items (%v), want %d", len(ps), err, n)
	}
}

// TestResumeItemsFromAcquire: the items an engine read in the acquire
// (Lease.Resume) are the first commit's, with no read of the queue for
// them; then the publisher reads on from them. (Its read-ahead of the
// next batch may start before the first commit: that read is after them.)
func TestResumeItemsFromAcquire(t *testing.T) {
	ctx := t.Context()
	mem := memstore.New(baton.SystemClock{})
	appendN(t, mem, "t", 0, 5)
	l, err := leasetest.Acquire(ctx, mem, "t", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	its, err := mem.Items(ctx, "t", 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	// The acquire read 3 of the 5, as if asked for 3: the publisher then
	// reads on from the third.
	cur := baton.Cursor{Topic: "t"}
	l.Cursor, l.Resume = &cur, &baton.Resume{Checked: true, Items: its, Asked: 3}
	st := &itemsCounter{Store: mem, minAfter: 3}
	type commit struct {
		seq uint64
		n   int
	}
	commits := make(chan commit, 10)
	run, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- publisher.Run(run, st, l, publisher.Options{From: &cur, OnCommit: func(c baton.Cursor, n int) {
			commits <- commit{c.Seq, n}
		}})
	}()
	waitCursor(t, mem, "t", 5)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	first := <-commits
	if first.seq != 3 || first.n != 3 || st.below.Load() != 0 {
		t.Fatalf("first commit: cursor %d, %d items, %d reads of the queue from before seq 3; want the acquire's 3 items with no read of them",
			first.seq, first.n, st.below.Load())
	}
	if next := <-commits; next.seq != 5 || next.n != 2 {
		t.Fatalf("second commit: cursor %d, %d items; want the last 2, read after the acquire's", next.seq, next.n)
	}
}

// TestResumeWait: with ResumeWait, an empty queue calls Resumed only once
// it has stayed empty that long on the clock, or at the first commit if
// items come first.
func TestResumeWait(t *testing.T) {
	for _, items := range []bool{false, true} {
		clock := clocktest.New(time.Unix(1000, 0))
		st := memstore.New(baton.SystemClock{})
		calls, stop := runResumed(t, st, publisher.Options{Clock: clock, ResumeWait: 2 * time.Second})
		// The poll's timer and the wait's: the first read found the queue empty.
		poll.Until(t, 10*time.Second, "two timers", func() error {
			if n := clock.Timers(); n < 2 {
				return fmt.Errorf("%d timers", n)
			}
			return nil
		})
		clock.Advance(time.Second)
		if items {
			appendN(t, st, "t", 0, 2)
			waitCursor(t, st, "t", 2)
			// The call follows the commit: wait for it (the clock stays
			// short of the wait).
			select {
			case seq := <-calls:
				if seq != 2 {
					t.Fatalf("resumed with the cursor at %d, want 2", seq)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("not resumed at the first commit")
			}
		}
		select {
		case seq := <-calls:
			if !items {
				t.Fatalf("resumed with the cursor at %d, before the wait", seq)
			}
			t.Fatalf("resumed again, with the cursor at %d", seq)
		default:
			if items {
				break
			}
			clock.Advance(time.Second)
			select {
			case seq := <-calls:
				if seq != 0 {
					t.Fatalf("resumed with the cursor at %d", seq)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("not resumed after the wait")
			}
		}
		stop()
		if n := len(calls); n != 0 {
			t.Fatalf("items %v: resumed %d more times", items, n)
		}
	}
}

// cappedReads is a store whose reads return at most max items, as the
// engines' do (sqlite.MaxRead).
type cappedReads struct {
	baton.Store
	max int
}

func (s cappedReads) Items(ctx context.Context, topic string, after uint64, limit int) ([]baton.Item, error) {
	return s.Store.Items(ctx, topic, after, min(limit, s.max))
}

// TestBatchBeyondTheReadCap: a Batch above what a read returns is bounded
// by MaxBatch, so a read capped by the store is not taken for the end of
// the queue: a backlog longer than the cap is published without waiting
// for another append.
func TestBatchBeyondTheReadCap(t *testing.T) {
	ctx := t.Context()
	mem := memstore.New(baton.SystemClock{})
	// Reads of 1k, 2k, 4k and 8k, then one asking 16k that the store caps
	// at 10k with more behind.
	const n = 3 * publisher.MaxBatch
	for i := 0; i < n; i += 5000 {
		appendN(t, mem, "t", i, min(5000, n-i))
	}
	l, err := leasetest.Acquire(ctx, mem, "t", "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	st := cappedReads{Store: mem, max: publisher.MaxBatch}
	go func() {
		done <- publisher.Run(run, st, l, publisher.Options{Batch: 3 * publisher.MaxBatch, Poll: time.Hour})
	}()
	waitCursor(t, mem, "t", n)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
