package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/leasetest"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/pubrecord"
	"github.com/baton-pub/baton/publisher"
	"github.com/baton-pub/baton/sqlite"
)

func upd(id, value, msg string) baton.Update {
	return norm(baton.Update{ID: id, Value: json.RawMessage(value), MsgID: msg})
}

func norm(u baton.Update) baton.Update {
	n, err := baton.Normalize(u)
	if err != nil {
		panic(err)
	}
	return n
}

// An append to a topic whose publisher registered is published in the
// same write: when Append returns, the cursor has moved, the publisher has
// been told, what Published returns is the commit's Published, and this
// process's publisher is not woken for items it already has (the other
// processes on the file hear the commit; not the append, while the lock is
// the publisher's lease: storetest's AppendToldOnlyToWhomItConcerns).
func TestPublishOnAppendInOneWrite(t *testing.T) {
	ctx := context.Background()
	path := "sqlite://" + filepath.Join(t.TempDir(), "f.db")
	s := openStore(t, path, sqlite.Options{})
	other := openStore(t, path, sqlite.Options{})
	const topic = "t"
	if _, err := s.Append(ctx, topic, []baton.Update{upd("a", `0`, "m0")}); err != nil {
		t.Fatal(err)
	}
	l, err := leasetest.Acquire(ctx, s, topic, "n1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The first item is published by Commit, as a publisher that resumes
	// does before it registers.
	first, err := s.Items(ctx, topic, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, baton.Commit{Topic: topic, Epoch: l.Epoch, Holder: l.Holder, Items: first, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	p := &pubrecord.Proposer{Lease: l}
	stop := s.PublishOnAppend(topic, p)
	defer stop()
	appends := s.Subscribe(topic, baton.SignalAppend)
	defer appends.Close()
	commits := s.Subscribe(topic, baton.SignalCommit)
	defer commits.Close()
	elsewhere := other.Subscribe(topic, baton.SignalCommit)
	defer elsewhere.Close()

	// A tombstone, and a retry within the request: two items appended.
	rs, err := s.Append(ctx, topic, []baton.Update{upd("b", `{"x":1}`, "m1"), norm(baton.Update{ID: "a", MsgID: "m2", Deleted: true}), upd("b", `{"x":1}`, "m1")})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].Seq != 2 || rs[1].Seq != 3 || !rs[2].Duplicate {
		t.Fatalf("receipts %+v", rs)
	}
	offered, settled := p.State()
	if len(offered) != 1 || len(offered[0]) != 2 || offered[0][0].Seq != 2 || offered[0][1].Seq != 3 {
		t.Fatalf("offered %+v, want items 2 and 3", offered)
	}
	if len(settled) != 1 || settled[0].Err != nil || settled[0].Cur.Seq != 3 || settled[0].Cur.Hash != rs[1].Hash {
		t.Fatalf("settled %+v before Append returned, want the cursor at 3", settled)
	}
	cur, err := s.Cursor(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Seq != 3 || cur.Epoch != l.Epoch {
		t.Fatalf("cursor %+v, want 3 under epoch %d", cur, l.Epoch)
	}
	ps, err := s.Published(ctx, topic, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := settled[0].C.Published(); !reflect.DeepEqual(ps, want) {
		t.Fatalf("Published returns\n%+v\nthe commit's Published is\n%+v", ps, want)
	}
	leaves, err := s.Leaves(ctx, topic, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaves) != 3 || leaves[2].ItemHash != rs[1].Hash || leaves[2].Epoch != l.Epoch {
		t.Fatalf("leaves %+v", leaves)
	}
	if !poll.Pending(commits) {
		t.Fatal("no SignalCommit in the appending process")
	}
	if poll.Pending(appends) {
		t.Fatal("SignalAppend in the appending process for items its publisher already published")
	}
	waitWake(t, elsewhere, "SignalCommit in another process")

	// stop ends the registration: the next append is left to Commit.
	stop()
	if _, err := s.Append(ctx, topic, []baton.Update{upd("c", `2`, "m3")}); err != nil {
		t.Fatal(err)
	}
	if offered, _ := p.State(); len(offered) != 1 {
		t.Fatalf("offered %d times after stop", len(offered))
	}
	if !poll.Pending(appends) {
		t.Fatal("no SignalAppend for an append left to Commit")
	}
	if cur, err := s.Cursor(ctx, topic); err != nil || cur.Seq != 3 {
		t.Fatalf("cursor %+v (%v) after an append with no publisher registered, want 3", cur, err)
	}
}

// A proposed commit the store refuses (not the lease's epoch, or a lease
// no longer live) is undone, never the append: the items stay in the
// queue, the cursor stays, the publisher is told why and woken to find
// them.
func TestPublishOnAppendRefusedKeepsTheAppend(t *testing.T) {
	for _, tc := range []struct {
		name string
		skew uint64
		end  bool
	}{
		{name: "stale epoch", skew: 1},
		{name: "lease released", end: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "f.db"), sqlite.Options{})
			const topic = "t"
			l, err := leasetest.Acquire(ctx, s, topic, "n1", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if tc.end {
				if err := s.Release(ctx, l, baton.ReasonReleased); err != nil {
					t.Fatal(err)
				}
			}
			p := &pubrecord.Proposer{Lease: l, Skew: tc.skew}
			defer s.PublishOnAppend(topic, p)()
			appends := s.Subscribe(topic, baton.SignalAppend)
			defer appends.Close()
			rs, err := s.Append(ctx, topic, []baton.Update{upd("a", `1`, "m1")})
			if err != nil {
				t.Fatalf("append with a refused commit: %v", err)
			}
			_, settled := p.State()
			if len(settled) != 1 || !errors.Is(settled[0].Err, baton.ErrLeaseLost) {
				t.Fatalf("settled %+v, want one ErrLeaseLost", settled)
			}
			items, err := s.Items(ctx, topic, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 1 || items[0].Hash != rs[0].Hash {
				t.Fatalf("queue %+v after a refused commit, want the item appended", items)
			}
			if cur, err := s.Cursor(ctx, topic); err != nil || cur.Seq != 0 {
				t.Fatalf("cursor %+v (%v) after a refused commit, want 0", cur, err)
			}
			if ls, err := s.Leaves(ctx, topic, 0, 10); err != nil || len(ls) != 0 {
				t.Fatalf("leaves %+v (%v) after a refused commit", ls, err)
			}
			if !poll.Pending(appends) {
				t.Fatal("the publisher was not woken for the items it did not publish")
			}
		})
	}
}

// publisher.Run on SQLite publishes, once it is caught up, the items
// appended through its own process in the append's write: each is
// published (handed to OnPublished, its leaves to the ledger) before
// Append returns. Items appended through another process are published
// by its reads and commits, in the same order, with no gap.
func TestPublisherPublishesOnAppend(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := "sqlite://" + filepath.Join(t.TempDir(), "f.db")
	s := openStore(t, path, sqlite.Options{})
	other := openStore(t, path, sqlite.Options{})
	const topic = "t"
	l, err := leasetest.Acquire(ctx, s, topic, "n1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rec := &pubrecord.Recorder{}
	done := make(chan error, 1)
	go func() { done <- publisher.Run(ctx, s, l, publisher.Options{Ledger: rec, OnPublished: rec.OnPublished}) }()
	// Appends through this process until one is published before its
	// Append returns (the publisher is caught up and waits), then every
	// next one must be too.
	a := &appender{t: t, topic: topic}
	poll.True(t, 10*time.Second, "an item published before its Append returned", func() bool {
		seq := a.one(s)
		return rec.Published(seq)
	})
	for range 50 {
		if seq := a.one(s); !rec.Published(seq) {
			t.Fatalf("item %d not published when its Append returned", seq)
		}
	}
	// Another process's items, then this one's again.
	var last uint64
	for range 20 {
		last = a.one(other)
	}
	poll.True(t, 10*time.Second, "the other process's items published", func() bool { return rec.Published(last) })
	poll.True(t, 10*time.Second, "publishing on append again", func() bool {
		seq := a.one(s)
		return rec.Published(seq)
	})

	got, leaves := rec.Got()
	for i, p := range got {
		if p.Seq != uint64(i+1) || p.Epoch != l.Epoch {
			t.Fatalf("published[%d] is seq %d epoch %d, want seq %d epoch %d", i, p.Seq, p.Epoch, i+1, l.Epoch)
		}
	}
	if len(leaves) != len(got) {
		t.Fatalf("the ledger was handed %d leaves for %d items published", len(leaves), len(got))
	}
	for i, lf := range leaves {
		if lf.Seq != uint64(i+1) {
			t.Fatalf("leaf %d has seq %d: the ledger's leaves are out of order", i, lf.Seq)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A publisher whose lease ends stops on the first append that follows: the
// commit on append is refused, the item stays in the queue, and the
// publisher's own Commit meets the fence.
func TestPublisherOnAppendFenced(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "sqlite://"+filepath.Join(t.TempDir(), "f.db"), sqlite.Options{})
	const topic = "t"
	l, err := leasetest.Acquire(ctx, s, topic, "n1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rec := &pubrecord.Recorder{}
	done := make(chan error, 1)
	go func() { done <- publisher.Run(ctx, s, l, publisher.Options{OnPublished: rec.OnPublished}) }()
	a := &appender{t: t, topic: topic}
	poll.True(t, 10*time.Second, "an item published before its Append returned", func() bool {
		seq := a.one(s)
		return rec.Published(seq)
	})
	if err := s.Release(ctx, l, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Append(ctx, topic, []baton.Update{upd("k", `"x"`, "after")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, baton.ErrLeaseLost) {
			t.Fatalf("publisher stopped with %v, want ErrLeaseLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the publisher of a released lease did not stop")
	}
	cur, err := s.Cursor(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if cur.Seq != rs[0].Seq-1 {
		t.Fatalf("cursor at %d after the lease ended, want %d (the item after it unpublished)", cur.Seq, rs[0].Seq-1)
	}
	items, err := s.Items(ctx, topic, cur.Seq, 10)
	if err != nil || len(items) != 1 || items[0].Hash != rs[0].Hash {
		t.Fatalf("queue after the cursor %+v (%v), want the item appended after the release", items, err)
	}
}

// appender appends one new item at a time to topic.
type appender struct {
	t     *testing.T
	topic string
	n     int
}

func (a *appender) one(st *sqlite.Store) uint64 {
	a.n++
	rs, err := st.Append(context.Background(), a.topic, []baton.Update{upd("k", fmt.Sprint(a.n), fmt.Sprint("m", a.n))})
	if err != nil {
		a.t.Fatal(err)
	}
	return rs[0].Seq
}
