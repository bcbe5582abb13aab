package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// TestRecentLock: an acquisition's holder and epoch are heard by another
// handle on the file (another node) from the changes log, and by the
// acquiring handle at its commit; a release, the end of the holder's node
// lease and a watcher fallen behind the log forget them. b's watcher polls
// only when the test calls poll.
func TestRecentLock(t *testing.T) {
	ctx := context.Background()
	a, b := shortLogHandles(t)
	poll := func() {
		t.Helper()
		if _, err := b.w.poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := func(s *Store, who, holder string, epoch uint64) {
		t.Helper()
		h, ep, ok := s.RecentLock("t")
		if holder == "" && ok {
			t.Fatalf("%s: RecentLock says %s holds it at %d, want unknown", who, h, ep)
		}
		if holder != "" && (!ok || h != holder || ep != epoch) {
			t.Fatalf("%s: RecentLock %q %d %v, want %s %d", who, h, ep, ok, holder, epoch)
		}
	}
	acquire := func(node string) baton.Lease { // under a new node lease
		t.Helper()
		nl, err := a.AcquireNode(ctx, node, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		l, err := a.Acquire(ctx, "t", nl)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}

	want(b, "nothing heard", "", 0)
	l := acquire("n1")
	want(a, "the acquiring handle", "n1", l.Epoch)
	want(b, "before its watcher read the log", "", 0)
	poll()
	want(b, "the other handle", "n1", l.Epoch)

	if err := a.Release(ctx, l, baton.ReasonReleased); err != nil {
		t.Fatal(err)
	}
	want(a, "the releasing handle", "", 0)
	poll()
	want(b, "after the release", "", 0)

	l = acquire("n2")
	poll()
	want(b, "a second acquisition", "n2", l.Epoch)
	if _, err := a.ReleaseNode(ctx, baton.NodeLease{Node: l.Holder, Epoch: l.NodeEpoch}, baton.ReasonCrashed); err != nil {
		t.Fatal(err)
	}
	want(a, "the handle that ended the node lease", "", 0)
	poll()
	want(b, "after the node lease ended", "", 0)

	l = acquire("n3")
	poll()
	want(b, "a third acquisition", "n3", l.Epoch)
	// b falls behind: the log is pruned past what it read, and nothing
	// it missed may be vouched for.
	for range 20 {
		if _, err := a.Append(ctx, "other", []baton.Update{{ID: "x", Value: []byte(`1`), MsgID: time.Now().String()}}); err != nil {
			t.Fatal(err)
		}
	}
	poll()
	want(b, "a watcher fallen behind", "", 0)
}
