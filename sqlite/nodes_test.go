package sqlite_test

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/sqlite"
)

func openStore(t *testing.T, path string, opts sqlite.Options) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func waitWake(t *testing.T, sub baton.Subscription, what string) {
	t.Helper()
	select {
	case <-sub.C():
	case <-time.After(10 * time.Second):
		t.Fatalf("no wake-up for %s", what)
	}
}

// TestRenewNodeWakesNobody: renewing a node lease signals nothing, in this
// process or another (store.go, Locks: an idle node must not wake the
// per-topic subscribers of every process). The watcher handles changes in
// the order they were logged, so once a later marker change has woken the
// other handle, a wake-up from the renewals would have come before it.
func TestRenewNodeWakesNobody(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	a, b := openStore(t, path, sqlite.Options{}), openStore(t, path, sqlite.Options{})
	all := baton.SignalAppend | baton.SignalCommit | baton.SignalLock
	subA, subB := a.Subscribe("x", all), b.Subscribe("x", all)
	nodesA, nodesB := a.Subscribe("", baton.SignalNode), b.Subscribe("", baton.SignalNode)
	marker := b.Subscribe("marker", baton.SignalAppend)
	for _, s := range []baton.Subscription{subA, subB, nodesA, nodesB, marker} {
		defer s.Close()
	}
	nl, err := a.AcquireNode(ctx, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, "x", nl); err != nil {
		t.Fatal(err)
	}
	waitWake(t, subB, "Acquire, through the other handle")
	waitWake(t, nodesB, "AcquireNode, through the other handle")
	poll.Pending(subA)
	poll.Pending(nodesA)
	poll.Pending(subB)
	poll.Pending(nodesB)
	for range 3 {
		if _, err := a.RenewNode(ctx, nl, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	u, _ := baton.Normalize(baton.Update{ID: "m", Value: []byte(`1`), MsgID: "m"})
	if _, err := a.Append(ctx, "marker", []baton.Update{u}); err != nil {
		t.Fatal(err)
	}
	waitWake(t, marker, "the marker append, through the other handle")
	for name, sub := range map[string]baton.Subscription{"x on a": subA, "x on b": subB, "nodes on a": nodesA, "nodes on b": nodesB} {
		if poll.Pending(sub) {
			t.Errorf("RenewNode woke the subscription to %s", name)
		}
	}
}

// TestFencedWriteChecksNodeLease: a commit and a checkpoint under a topic
// lease whose node lease lapsed are fenced, though the topic row itself is
// untouched (nobody recorded the lapse yet).
func TestFencedWriteChecksNodeLease(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "f.db"), sqlite.Options{})
	u, _ := baton.Normalize(baton.Update{ID: "a", Value: []byte(`1`), MsgID: "a"})
	if _, err := s.Append(ctx, "t", []baton.Update{u}); err != nil {
		t.Fatal(err)
	}
	items, err := s.Items(ctx, "t", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	nl, err := s.AcquireNode(ctx, "n1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Acquire(ctx, "t", nl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RenewNode(ctx, nl, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	poll.True(t, 10*time.Second, "the lease to lapse", func() bool {
		st, err := s.Lock(ctx, "t")
		return err == nil && !st.Held
	})
	_, err = s.Commit(ctx, baton.Commit{Topic: "t", Epoch: l.Epoch, Holder: l.Holder, Items: items, At: time.Now()})
	if !errors.Is(err, baton.ErrFenced) {
		t.Fatalf("commit under a lapsed node lease: %v, want fenced", err)
	}
	err = s.AddCheckpoint(ctx, baton.Checkpoint{Topic: "t", Size: 1, Epoch: l.Epoch, Node: l.Holder, Note: []byte("n")})
	if !errors.Is(err, baton.ErrFenced) {
		t.Fatalf("checkpoint under a lapsed node lease: %v, want fenced", err)
	}
	if recs, err := s.Handovers(ctx, "t", 10); err != nil || len(recs) != 0 {
		t.Fatalf("fenced writes wrote records: %+v %v", recs, err)
	}
}

//go:embed testdata/schema_v1.sql
var schemaV1 string

// TestMigrateFromVersion1: a file of schema version 1 (a lease per topic)
// is migrated when opened: its topic leases, under no node lease, read as
// lapsed, and the next Acquire records them as expired. A file of a newer
// version is refused.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schemaV1); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).UnixNano()
	if _, err := db.Exec(`INSERT INTO topics (topic, epoch, holder, acquired_at, expires_at) VALUES ('t', 1, 'old', 1, ?)`, until); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openStore(t, path, sqlite.Options{})
	st, err := s.Lock(ctx, "t")
	if err != nil || st.Held || st.Lease.Epoch != 1 || st.Lease.Holder != "old" {
		t.Fatalf("Lock of a version 1 lease = %+v, %v; want epoch 1 by old, not held", st, err)
	}
	nl, err := s.AcquireNode(ctx, "new", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Acquire(ctx, "t", nl)
	if err != nil || l.Epoch != 2 {
		t.Fatalf("Acquire over a version 1 lease = %+v, %v; want epoch 2", l, err)
	}
	recs, err := s.Handovers(ctx, "t", 10)
	if err != nil || len(recs) != 1 || recs[0].Epoch != 1 || recs[0].Reason != baton.ReasonExpired || recs[0].Successor != "new" {
		t.Fatalf("records after the migration = %+v, %v; want epoch 1 expired, succeeded by new", recs, err)
	}
	if recs[0].At.After(l.AcquiredAt) {
		t.Fatalf("the version 1 lease's record is dated %v, after its successor acquired at %v", recs[0].At, l.AcquiredAt)
	}
	s.Close()
	openStore(t, path, sqlite.Options{}).Close() // a migrated file opens as is

	db, err = sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := sqlite.Open(ctx, path, sqlite.Options{}); err == nil || !strings.Contains(err.Error(), "newer") {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a file of schema version 99: %v, want refused as newer", err)
	}
}
