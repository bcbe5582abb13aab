package hub

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
)

// readCounter counts the reads of published items past a position.
type readCounter struct {
	baton.Store
	past  atomic.Uint64
	reads atomic.Int64
}

func (s *readCounter) Published(ctx context.Context, topic string, after uint64, limit int) ([]baton.Published, error) {
	if after >= s.past.Load() {
		s.reads.Add(1)
	}
	return s.Store.Published(ctx, topic, after, limit)
}

// commitN commits n new items the way the holder's node does, calling
// before with the commit first.
func commitN(t *testing.T, p *publisher, n int, before func(c baton.Commit)) baton.Commit {
	t.Helper()
	ctx := context.Background()
	p.appendN(n)
	cur, err := p.st.Cursor(ctx, p.topic)
	if err != nil {
		t.Fatal(err)
	}
	items, err := p.st.Items(ctx, p.topic, cur.Seq, n)
	if err != nil || len(items) != n {
		t.Fatalf("items: %d, %v", len(items), err)
	}
	c := baton.Commit{Topic: p.topic, Epoch: p.lease.Epoch, Holder: p.lease.Holder, PrevSeq: cur.Seq, Items: items, At: time.Now()}
	before(c)
	if _, err := p.st.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// commitHanded commits n new items the way the holder's node does, and
// hands them to the hub unless skip.
func commitHanded(t *testing.T, p *publisher, h *Hub, n int, skip bool) {
	t.Helper()
	c := commitN(t, p, n, func(baton.Commit) {})
	if !skip {
		h.Published(p.topic, c.Published())
	}
}

// TestHandoffFeedsWithoutReads: while this node's publisher runs, its
// commits reach the terminals with no read of the store past the position
// the feed started at; a commit not handed over (a gap) is read; once the
// publisher stops, commits of another node are read again.
func TestHandoffFeedsWithoutReads(t *testing.T) {
	st := &readCounter{Store: memstore.New(nil)}
	st.past.Store(math.MaxUint64) // nothing counted until the feed started
	h := startHub(t, st, Options{})
	p := newPublisher(t, st, testTopic)
	p.publish(10)
	h.Publishing(testTopic, true)
	term := subscribe(t, h, testTopic, 0)
	r := newReceiver(t, term, 0)
	r.until(10, 5*time.Second)
	// The feed's first read (at the cursor, 10) done: from here, reads of
	// the store past seq 10 would be the hand-off's failure.
	waitFeedAt(t, h, 10)
	st.past.Store(11)
	for range 20 {
		commitHanded(t, p, h, 5, false)
	}
	r.until(110, 5*time.Second)
	if n := st.reads.Load(); n != 0 {
		t.Fatalf("%d reads of the store past seq 10 while the commits were handed over, want 0", n)
	}

	// A commit not handed over: the next one does not follow the feed's
	// position, and the store has what lies between.
	commitHanded(t, p, h, 3, true)
	commitHanded(t, p, h, 2, false)
	r.until(115, 5*time.Second)

	// The publisher stopped: another node's commits are read.
	h.Publishing(testTopic, false)
	commitHanded(t, p, h, 4, true)
	r.until(119, 5*time.Second)
	if st.reads.Load() == 0 {
		t.Fatal("no read of the store after the gap and the publisher's stop")
	}
}

// TestHandoffOnlyWhilePublishing: items handed over by a node whose
// publisher is not running (or before the terminal's feed exists) are
// ignored; the terminals still get every item from the store.
func TestHandoffOnlyWhilePublishing(t *testing.T) {
	st := memstore.New(nil)
	h := startHub(t, st, Options{})
	p := newPublisher(t, st, testTopic)
	commitHanded(t, p, h, 5, false) // no feed yet: ignored
	term := subscribe(t, h, testTopic, 0)
	r := newReceiver(t, term, 0)
	r.until(5, 5*time.Second)
	commitHanded(t, p, h, 5, false) // not publishing: read from the store
	r.until(10, 5*time.Second)
	h.Publishing(testTopic, true)
	commitHanded(t, p, h, 5, false)
	r.until(15, 5*time.Second)
}

// waitFeedAt waits until the topic's feed has started and delivered up to
// seq (its first read of the store done).
func waitFeedAt(t testing.TB, h *Hub, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		f := h.feeds[testTopic]
		h.mu.Unlock()
		if f != nil && f.pos.Load() >= seq {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the feed did not reach seq %d", seq)
		}
		time.Sleep(time.Millisecond)
	}
}

// hinted is a store whose commit notifications carry the items (as Redis's
// do, baton.RecentPublished): the test sets what the next commit's message
// carried before it commits, or nothing (unknown).
type hinted struct {
	readCounter
	mu      sync.Mutex
	upto    uint64
	items   []baton.Published
	unknown bool
}

func (s *hinted) RecentPublished(topic string, after uint64, limit int) ([]baton.Published, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.unknown || len(s.items) == 0:
		return nil, false
	case after == s.upto:
		return nil, true
	case after+1 < s.items[0].Seq || after > s.upto:
		return nil, false
	}
	ps := s.items[after+1-s.items[0].Seq:]
	return ps[:min(len(ps), limit)], true
}

// commitCarried commits n new items as another node does, its message
// carrying them, or not (carry false: a big commit).
func commitCarried(t *testing.T, p *publisher, st *hinted, n int, carry bool) {
	t.Helper()
	commitN(t, p, n, func(c baton.Commit) {
		st.mu.Lock()
		st.items, st.upto, st.unknown = c.Published(), c.PrevSeq+uint64(n), !carry
		st.mu.Unlock()
	})
}

// TestRemoteCommitsWithoutReads: on a node that does not publish the topic,
// commits whose messages carried their items reach the terminals with no
// read of the store (baton.RecentPublished); one that carried none is read.
func TestRemoteCommitsWithoutReads(t *testing.T) {
	st := &hinted{readCounter: readCounter{Store: memstore.New(nil)}}
	st.past.Store(math.MaxUint64)
	h := startHub(t, st, Options{})
	p := newPublisher(t, st, testTopic)
	p.publish(10)
	term := subscribe(t, h, testTopic, 0)
	r := newReceiver(t, term, 0)
	r.until(10, 5*time.Second)
	waitFeedAt(t, h, 10)
	st.past.Store(11)
	for i := range 20 {
		commitCarried(t, p, st, 5, true)
		r.until(uint64(15+5*i), 5*time.Second)
	}
	if n := st.reads.Load(); n != 0 {
		t.Fatalf("%d reads of the store past seq 10 for commits whose messages carried their items, want 0", n)
	}
	commitCarried(t, p, st, 40, false)
	r.until(150, 5*time.Second)
	if st.reads.Load() == 0 {
		t.Fatal("a commit whose message carried nothing was delivered without a read")
	}
}
