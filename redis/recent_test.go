package redis_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/redistest"
	"github.com/baton-pub/baton/redis"
)

// twoHandles starts a Redis and opens two handles on it (two nodes); the
// second is subscribed to topic's signals.
func twoHandles(t *testing.T, topic string, signals baton.Signal) (*redistest.Server, *redis.Store, *redis.Store, baton.Subscription) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	a, b := open(t, srv.URL(0), redis.Options{}), open(t, srv.URL(0), redis.Options{})
	sub := b.Subscribe(topic, signals)
	t.Cleanup(sub.Close)
	return srv, a, b, sub
}

// TestRecentPublished: a small commit's message carries its items to
// another handle (another node), which then answers RecentPublished with
// exactly what Published reads, and "nothing newer" at the commit's seq; a
// big commit's message carries none, so the other handle cannot vouch for
// what follows until a small one comes; a re-subscription (messages may
// have been lost) forgets everything.
func TestRecentPublished(t *testing.T) {
	const topic = "recent"
	srv, a, b, sub := twoHandles(t, topic, baton.SignalCommit)
	ctx := t.Context()
	l := acquire(t, a, topic, "n1", time.Minute)

	commit := func(n int) uint64 {
		t.Helper()
		cur, err := a.Cursor(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Append(ctx, topic, updates(t, n)); err != nil {
			t.Fatal(err)
		}
		items, err := a.Items(ctx, topic, cur.Seq, n)
		if err != nil || len(items) != n {
			t.Fatalf("items: %d, %v", len(items), err)
		}
		c := baton.Commit{Topic: topic, Epoch: l.Epoch, Holder: l.Holder, PrevSeq: cur.Seq, Items: items, At: time.Now()}
		if _, err := a.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
		waitWake(t, sub, "a commit through the other handle")
		return cur.Seq
	}
	same := func(got []baton.Published, after uint64, n int) {
		t.Helper()
		want, err := b.Published(ctx, topic, after, n)
		if err != nil {
			t.Fatal(err)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if string(g) != string(w) || len(got) != n {
			t.Fatalf("RecentPublished after %d:\n got %s\nwant %s", after, g, w)
		}
	}

	if _, ok := b.RecentPublished(topic, 0, 100); ok {
		t.Fatal("nothing heard yet: RecentPublished vouched")
	}
	prev := commit(3)
	ps, ok := b.RecentPublished(topic, prev, 100)
	if !ok {
		t.Fatal("a small commit's items were not carried")
	}
	same(ps, prev, 3)
	if ps, ok := b.RecentPublished(topic, prev+1, 100); !ok {
		t.Fatal("the last two of a carried commit: not vouched")
	} else {
		same(ps, prev+1, 2)
	}
	if ps, ok := b.RecentPublished(topic, prev+3, 100); !ok || len(ps) != 0 {
		t.Fatalf("at the newest commit heard: %d items, ok %v; want none, ok", len(ps), ok)
	}
	if ps, ok := b.RecentPublished(topic, prev, 1); !ok {
		t.Fatal("limit 1: not vouched")
	} else {
		same(ps, prev, 1)
	}

	big := commit(40) // more than a message carries
	if _, ok := b.RecentPublished(topic, big, 100); ok {
		t.Fatal("a big commit's items: vouched, though its message carries none")
	}
	if _, ok := b.RecentPublished(topic, big+40, 100); ok {
		t.Fatal("after a big commit: vouched for nothing newer, though the items were not heard")
	}
	small := commit(2)
	if ps, ok := b.RecentPublished(topic, small, 100); !ok {
		t.Fatal("a small commit after a big one: not carried")
	} else {
		same(ps, small, 2)
	}
	if _, ok := b.RecentPublished(topic, big, 100); ok {
		t.Fatal("from before the small commit: vouched, though the big one was not carried")
	}

	if _, err := srv.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	waitWake(t, sub, "the pub/sub connections were killed")
	if _, ok := b.RecentPublished(topic, small+2, 100); ok {
		t.Fatal("after a re-subscription: vouched, though messages may have been lost")
	}
}

// TestRecentLock: another handle (another node) hears an acquisition's
// holder and epoch from its message, and forgets it at the release's;
// the node lease's end and a re-subscription forget it too.
func TestRecentLock(t *testing.T) {
	const topic = "recentlock"
	srv, a, b, sub := twoHandles(t, topic, baton.SignalLock)
	ctx := t.Context()
	if _, _, ok := b.RecentLock(topic); ok {
		t.Fatal("nothing heard yet: RecentLock said a holder")
	}
	l := acquire(t, a, topic, "n1", time.Minute)
	waitWake(t, sub, "an acquisition through the other handle")
	if h, ep, ok := b.RecentLock(topic); !ok || h != "n1" || ep != l.Epoch {
		t.Fatalf("RecentLock after the acquisition: %q %d %v, want n1 %d true", h, ep, ok, l.Epoch)
	}
	if err := a.Release(ctx, l, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	waitWake(t, sub, "a release through the other handle")
	if h, _, ok := b.RecentLock(topic); ok {
		t.Fatalf("after the release: RecentLock says %q holds it", h)
	}
	l = acquire(t, a, topic, "n2", time.Minute)
	waitWake(t, sub, "a second acquisition")
	if _, err := a.ReleaseNode(ctx, nodeOf(l), baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	waitWake(t, sub, "the end of the holder's node lease")
	if h, _, ok := b.RecentLock(topic); ok {
		t.Fatalf("after the node lease ended: RecentLock says %q holds it", h)
	}
	acquire(t, a, topic, "n3", time.Minute)
	waitWake(t, sub, "a third acquisition")
	if _, _, ok := b.RecentLock(topic); !ok {
		t.Fatal("the third acquisition was not heard")
	}
	if _, err := srv.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	waitWake(t, sub, "the pub/sub connections were killed")
	if h, _, ok := b.RecentLock(topic); ok {
		t.Fatalf("after a re-subscription: RecentLock says %q holds it", h)
	}
}
