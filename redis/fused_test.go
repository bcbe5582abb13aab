package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/internal/pubrecord"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/publisher"
	"github.com/baton-pub/baton/redis"
)

func upd(id, value, msg string) baton.Update {
	u, err := baton.Normalize(baton.Update{ID: id, Value: json.RawMessage(value), MsgID: msg})
	if err != nil {
		panic(err)
	}
	return u
}

// TestPublishOnAppendWithTheAppend: an append to a topic whose resting
// publisher registered carries the commit it proposes in the same round
// trip: when Append returns the cursor has moved, the publisher has been
// told, Published returns the commit's Published, the ledger has the
// leaves, and this handle's publisher is not woken for items it already
// has (another handle hears the commit, and not the append: the lock is
// the proposer's lease: storetest's AppendToldOnlyToWhomItConcerns).
func TestPublishOnAppendWithTheAppend(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, other := open(t, srv.URL(0), redis.Options{}), open(t, srv.URL(0), redis.Options{})
	ctx := t.Context()
	const topic = "t"
	l := acquire(t, s, topic, "n1", time.Hour)
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
	tomb, err := baton.Normalize(baton.Update{ID: "a", MsgID: "m2", Deleted: true})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Append(ctx, topic, []baton.Update{upd("b", `{"x":1}`, "m1"), tomb, upd("b", `{"x":1}`, "m1")})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].Seq != 1 || rs[1].Seq != 2 || !rs[2].Duplicate {
		t.Fatalf("receipts %+v", rs)
	}
	offered, settled := p.State()
	if len(offered) != 1 || len(offered[0]) != 2 || offered[0][0].Seq != 1 || offered[0][1].Seq != 2 {
		t.Fatalf("offered %+v, want items 1 and 2", offered)
	}
	if len(settled) != 1 || settled[0].Err != nil || settled[0].Cur.Seq != 2 || settled[0].Cur.Hash != rs[1].Hash {
		t.Fatalf("settled %+v before Append returned, want the cursor at 2", settled)
	}
	cur, err := s.Cursor(ctx, topic)
	if err != nil || cur.Seq != 2 || cur.Epoch != l.Epoch {
		t.Fatalf("cursor %+v (%v), want 2 under epoch %d", cur, err, l.Epoch)
	}
	ps, err := s.Published(ctx, topic, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := settled[0].C.Published(); !reflect.DeepEqual(ps, want) {
		t.Fatalf("Published returns\n%+v\nthe commit's Published is\n%+v", ps, want)
	}
	leaves, err := s.Leaves(ctx, topic, 0, 10)
	if err != nil || len(leaves) != 2 || leaves[1].ItemHash != rs[1].Hash || leaves[1].Epoch != l.Epoch {
		t.Fatalf("leaves %+v (%v)", leaves, err)
	}
	if !poll.Pending(commits) {
		t.Fatal("no SignalCommit in the appending handle")
	}
	if poll.Pending(appends) {
		t.Fatal("SignalAppend in the appending handle for items its publisher already published")
	}
	select {
	case <-elsewhere.C():
	case <-time.After(10 * time.Second):
		t.Fatal("no SignalCommit in another handle")
	}

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
	if cur, err := s.Cursor(ctx, topic); err != nil || cur.Seq != 2 {
		t.Fatalf("cursor %+v (%v) after an append with no publisher registered, want 2", cur, err)
	}
}

// TestPublishOnAppendRefusedKeepsTheAppend: a commit sent with an append
// that the store refuses is not made, and the append stands: the items
// stay in the queue, the cursor stays, the publisher is told why and woken
// to find them. Refused: a stale epoch, a released lease, another handle's
// append between the publisher's rest and this one (the items took other
// seqs), and a msg id already in the queue but not published (the append
// wrote nothing: the entry at that seq is not this append's).
func TestPublishOnAppendRefusedKeepsTheAppend(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	for i, tc := range []struct {
		name   string
		skew   uint64
		end    bool
		before []baton.Update // appended by another handle first
		want   error          // nil: any refusal
	}{
		{name: "stale epoch", skew: 1, want: baton.ErrLeaseLost},
		{name: "lease released", end: true, want: baton.ErrLeaseLost},
		{name: "another append first", before: []baton.Update{upd("z", `0`, "other")}},
		{name: "msg id in the queue", before: []baton.Update{upd("a", `1`, "m1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s, other := open(t, srv.URL(0), redis.Options{}), open(t, srv.URL(0), redis.Options{})
			topic := "refused-" + fmt.Sprint(i)
			l := acquire(t, s, topic, "n"+fmt.Sprint(i), time.Hour)
			if tc.end {
				if err := s.Release(ctx, l, baton.ReasonReleased); err != nil {
					t.Fatal(err)
				}
			}
			if tc.before != nil {
				if _, err := other.Append(ctx, topic, tc.before); err != nil {
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
			if len(settled) != 1 || settled[0].Err == nil || (tc.want != nil && !errors.Is(settled[0].Err, tc.want)) {
				t.Fatalf("settled %+v, want one refusal (%v)", settled, tc.want)
			}
			items, err := s.Items(ctx, topic, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(tc.before) + 1 - btoi(rs[0].Duplicate); len(items) != n || items[len(items)-1].Hash != rs[0].Hash {
				t.Fatalf("queue %+v after a refused commit, want %d items, the last the one appended", items, n)
			}
			if cur, err := s.Cursor(ctx, topic); err != nil || cur.Seq != 0 {
				t.Fatalf("cursor %+v (%v) after a refused commit, want 0", cur, err)
			}
			if ls, err := s.Leaves(ctx, topic, 0, 10); err != nil || len(ls) != 0 {
				t.Fatalf("leaves %+v (%v) after a refused commit", ls, err)
			}
			if !rs[0].Duplicate && !poll.Pending(appends) {
				t.Fatal("the publisher was not woken for the items it did not publish")
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPublisherPublishesOnAppend: publisher.Run on Redis publishes, once it
// is caught up, the items appended through its own handle with their
// append: each is handed to OnPublished and its leaf to the ledger before
// Append returns. Items appended through another handle are published by
// its reads and commits, in the same order, with no gap.
func TestPublisherPublishesOnAppend(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, other := open(t, srv.URL(0), redis.Options{}), open(t, srv.URL(0), redis.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const topic = "t"
	l := acquire(t, s, topic, "n1", time.Hour)
	rec := &pubrecord.Recorder{}
	done := make(chan error, 1)
	go func() { done <- publisher.Run(ctx, s, l, publisher.Options{Ledger: rec, OnPublished: rec.OnPublished}) }()
	n := 0
	one := func(st *redis.Store) uint64 {
		n++
		rs, err := st.Append(context.Background(), topic, []baton.Update{upd("k", fmt.Sprint(n), fmt.Sprint("m", n))})
		if err != nil {
			t.Fatal(err)
		}
		return rs[0].Seq
	}
	poll.True(t, 10*time.Second, "an item published before its Append returned", func() bool { return rec.Published(one(s)) })
	for range 50 {
		if seq := one(s); !rec.Published(seq) {
			t.Fatalf("item %d not published when its Append returned", seq)
		}
	}
	var last uint64
	for range 20 {
		last = one(other)
	}
	poll.True(t, 10*time.Second, "the other handle's items published", func() bool { return rec.Published(last) })
	poll.True(t, 10*time.Second, "publishing on append again", func() bool { return rec.Published(one(s)) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, leaves := rec.Got()
	for i, p := range got {
		if p.Seq != uint64(i+1) || p.Epoch != l.Epoch {
			t.Fatalf("published[%d] is seq %d epoch %d, want seq %d epoch %d", i, p.Seq, p.Epoch, i+1, l.Epoch)
		}
	}
	if len(leaves) != len(got) {
		t.Fatalf("the ledger was handed %d leaves for %d items published", len(leaves), len(got))
	}
	ps, err := s.Published(t.Context(), topic, 0, 1000)
	if err != nil || !reflect.DeepEqual(ps, got) {
		t.Fatalf("the store's Published (%d, %v) is not what the publisher handed over (%d)", len(ps), err, len(got))
	}
}
