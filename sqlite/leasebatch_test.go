package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/sqlite"
)

// TestLeaseWritesBatched: many lease writes at once (as when a node lease
// ends and hundreds of topics are raced for) share transactions, and each
// keeps its own outcome: the acquires under a live node lease succeed and
// signal; those under a released one fail and leave nothing behind, not even
// the topic their savepoint created; a race for one topic has one winner.
func TestLeaseWritesBatched(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "b.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	live, err := s.AcquireNode(ctx, "live", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	rival, err := s.AcquireNode(ctx, "rival", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := s.AcquireNode(ctx, "dead", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReleaseNode(ctx, dead, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	const n = 150
	subs := make([]baton.Subscription, n)
	for i := range subs {
		subs[i] = s.Subscribe(fmt.Sprintf("good-%03d", i), baton.SignalLock)
		defer subs[i].Close()
	}
	var wg sync.WaitGroup
	good := make([]error, n)
	bad := make([]error, n)
	race := make([]error, 2)
	for i := range n {
		wg.Go(func() { _, good[i] = s.Acquire(ctx, fmt.Sprintf("good-%03d", i), live) })
		wg.Go(func() { _, bad[i] = s.Acquire(ctx, fmt.Sprintf("bad-%03d", i), dead) })
	}
	wg.Go(func() { _, race[0] = s.Acquire(ctx, "contested", live) })
	wg.Go(func() { _, race[1] = s.Acquire(ctx, "contested", rival) })
	wg.Wait()
	for i := range n {
		if good[i] != nil {
			t.Fatalf("acquire good-%03d under a live node lease: %v", i, good[i])
		}
		if !errors.Is(bad[i], baton.ErrLeaseLost) {
			t.Fatalf("acquire bad-%03d under a released node lease: %v, want ErrLeaseLost", i, bad[i])
		}
		select {
		case <-subs[i].C():
		case <-time.After(10 * time.Second):
			t.Fatalf("good-%03d acquired without a lock signal", i)
		}
	}
	if (race[0] == nil) == (race[1] == nil) {
		t.Fatalf("race for one topic: %v and %v, want exactly one winner", race[0], race[1])
	}
	topics, err := s.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(topics, func(t string) bool { return len(t) > 4 && t[:4] == "bad-" }); i >= 0 {
		t.Fatalf("a refused acquire left its topic %s behind", topics[i])
	}
	if len(topics) != n+1 {
		t.Fatalf("%d topics, want %d", len(topics), n+1)
	}
	ls, err := s.NodeLeases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Node == "live" && l.Leases != n+boolInt(race[0] == nil) {
			t.Fatalf("live holds %d leases, want %d", l.Leases, n+boolInt(race[0] == nil))
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestCommitsBatched: commits of many topics that wait for the write lock
// together share one transaction, and each keeps its own outcome: a fenced
// commit fails alone, the others publish and signal.
func TestCommitsBatched(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Sync: "normal", BusyTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nl, err := s.AcquireNode(ctx, "n", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	commits := make([]baton.Commit, n)
	subs := make([]baton.Subscription, n)
	for i := range n {
		topic := fmt.Sprintf("c-%03d", i)
		u, _ := baton.Normalize(baton.Update{ID: "k", MsgID: topic, Value: []byte("1")})
		if _, err := s.Append(ctx, topic, []baton.Update{u}); err != nil {
			t.Fatal(err)
		}
		l, err := s.Acquire(ctx, topic, nl)
		if err != nil {
			t.Fatal(err)
		}
		items, err := s.Items(ctx, topic, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		commits[i] = baton.Commit{Topic: topic, Epoch: l.Epoch, Holder: l.Holder, Items: items, At: time.Now()}
		if i%10 == 0 {
			commits[i].Epoch++ // not the lease: fenced
		}
		subs[i] = s.Subscribe(topic, baton.SignalCommit)
		defer subs[i].Close()
	}

	// Another process holds the write lock while every commit queues.
	hold := takeWriteLock(t, path)
	before := sqlite.WriteBatches(s)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = s.Commit(ctx, commits[i]) })
	}
	poll.True(t, 10*time.Second, "every commit waiting", func() bool { return sqlite.QueuedWrites(s) == n })
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	// Those that began waiting, then the rest in batches of at most
	// MaxWriteBatch.
	if got, most := sqlite.WriteBatches(s)-before, int64(1+(n-1+sqlite.MaxWriteBatch-1)/sqlite.MaxWriteBatch); got < 1 || got > most {
		t.Errorf("%d commits in %d transactions, want at most %d", n, got, most)
	}
	for i := range n {
		if i%10 == 0 {
			if !errors.Is(errs[i], baton.ErrFenced) {
				t.Fatalf("commit %d with a stale epoch: %v, want ErrFenced", i, errs[i])
			}
			if c, _ := s.Cursor(ctx, commits[i].Topic); c.Seq != 0 {
				t.Fatalf("a fenced commit moved the cursor of %s to %d", commits[i].Topic, c.Seq)
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("commit %d: %v", i, errs[i])
		}
		if c, _ := s.Cursor(ctx, commits[i].Topic); c.Seq != 1 {
			t.Fatalf("cursor of %s at %d, want 1", commits[i].Topic, c.Seq)
		}
		select {
		case <-subs[i].C():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s committed without a commit signal", commits[i].Topic)
		}
	}
}

// TestAppendsToManyTopicsGrouped: appends to many topics that wait for the
// write lock together are committed in a few transactions (a group takes
// up to MaxWriteBatch topics), not one each, and each gets its own
// receipts: a burst of new topics, or a new item for each of a crashed
// node's topics, costs an fsync per group.
func TestAppendsToManyTopicsGrouped(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{Sync: "normal", BusyTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hold := takeWriteLock(t, path)
	const n = 100
	before := sqlite.WriteBatches(s)
	var wg sync.WaitGroup
	receipts := make([][]baton.Receipt, n)
	errs := make([]error, n)
	for i := range n {
		topic := fmt.Sprintf("a-%03d", i)
		u, _ := baton.Normalize(baton.Update{ID: "k", MsgID: topic, Value: []byte(fmt.Sprint(i))})
		wg.Go(func() { receipts[i], errs[i] = s.Append(ctx, topic, []baton.Update{u, u}) })
	}
	// The first leads a group, which waits for the lock (with any that
	// queued before it began); the others queue behind it.
	poll.True(t, 10*time.Second, "every append waiting", func() bool { return sqlite.GroupedAppends(s) == n })
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got, most := sqlite.WriteBatches(s)-before, int64(1+(n-1+sqlite.MaxWriteBatch-1)/sqlite.MaxWriteBatch); got < 1 || got > most {
		t.Errorf("appends to %d topics in %d transactions, want at most %d", n, got, most)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("append %d: %v", i, errs[i])
		}
		if len(receipts[i]) != 2 || receipts[i][0].Seq != 1 || receipts[i][0].Duplicate || receipts[i][1].Seq != 1 || !receipts[i][1].Duplicate {
			t.Fatalf("append %d: receipts %+v, want seq 1 then its duplicate", i, receipts[i])
		}
		items, err := s.Items(ctx, fmt.Sprintf("a-%03d", i), 0, 10)
		if err != nil || len(items) != 1 || string(items[0].Value) != fmt.Sprint(i) {
			t.Fatalf("topic %d holds %+v (%v), want its one item", i, items, err)
		}
	}
}

// takeWriteLock takes the write lock of the database at path on a
// connection of its own, as another process would, until the returned
// transaction ends (or the test does).
func takeWriteLock(t *testing.T, path string) *sql.Tx {
	t.Helper()
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	hold, err := other.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return hold
}
