package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
)

// framesOf makes frames for seqs from..to, each with an encoding of size
// bytes.
func framesOf(from, to uint64, size int) []Frame {
	var fs []Frame
	for s := from; s <= to; s++ {
		fs = append(fs, Frame{Item: baton.Published{Item: baton.Item{Seq: s}}, SSE: make([]byte, size)})
	}
	return fs
}

func seqsOf(fs []Frame) []uint64 {
	out := make([]uint64, len(fs))
	for i, f := range fs {
		out[i] = f.Item.Seq
	}
	return out
}

func TestRecentFramesAfter(t *testing.T) {
	var r recentFrames
	if _, ok := r.after(0, 10); ok {
		t.Fatal("empty recent frames answered")
	}
	r.add(framesOf(5, 9, 10))
	cases := []struct {
		last  uint64
		limit int
		want  []uint64
		ok    bool
	}{
		{3, 10, nil, false},                    // 4 is not there: the store must say
		{4, 10, []uint64{5, 6, 7, 8, 9}, true}, // right before the first
		{6, 10, []uint64{7, 8, 9}, true},
		{6, 2, []uint64{7, 8}, true},
		{9, 10, nil, true},  // at the head: nothing more
		{12, 10, nil, true}, // past it (a store read overtook the feed)
	}
	for _, c := range cases {
		got, ok := r.after(c.last, c.limit)
		if ok != c.ok || len(got) != len(c.want) {
			t.Fatalf("after(%d, %d) = %v, %v; want %v, %v", c.last, c.limit, seqsOf(got), ok, c.want, c.ok)
		}
		for i := range got {
			if got[i].Item.Seq != c.want[i] {
				t.Fatalf("after(%d, %d) = %v; want %v", c.last, c.limit, seqsOf(got), c.want)
			}
		}
	}
	for last, want := range map[uint64]bool{3: false, 4: true, 9: true, 10: false} {
		if r.covers(last) != want {
			t.Errorf("covers(%d) = %v, want %v", last, !want, want)
		}
	}
}

func TestRecentFramesBounds(t *testing.T) {
	var r recentFrames
	r.add(framesOf(1, 1000, 0)) // more than recentItems in one batch, small
	if n := len(r.frames); n != recentItems || r.frames[n-1].Item.Seq != 1000 || r.frames[0].Item.Seq != 1000-recentItems+1 {
		t.Fatalf("kept %d frames, %d..%d; want the newest %d", n, r.frames[0].Item.Seq, r.frames[n-1].Item.Seq, recentItems)
	}
	// Large frames: the byte bound holds (and the newest frame stays).
	r.add(framesOf(1001, 1100, 4096))
	if r.bytes > recentBytes {
		t.Fatalf("%d bytes kept, bound %d", r.bytes, recentBytes)
	}
	if got := r.frames[len(r.frames)-1].Item.Seq; got != 1100 {
		t.Fatalf("newest kept %d, want 1100", got)
	}
	sum := 0
	for _, f := range r.frames {
		sum += frameBytes(f)
	}
	if sum != r.bytes {
		t.Fatalf("bytes %d, frames add up to %d", r.bytes, sum)
	}
	// A batch that does not follow: only it is kept.
	r.add(framesOf(2000, 2001, 10))
	if got := seqsOf(r.frames); len(got) != 2 || got[0] != 2000 {
		t.Fatalf("after a jump kept %v, want [2000 2001]", got)
	}
}

// TestRecentFramesHandedOutNeverChange: slices handed to terminals share
// the recent frames' array, so later adds must never write what they see.
func TestRecentFramesHandedOutNeverChange(t *testing.T) {
	var r recentFrames
	var seen [][]Frame
	var want [][]uint64
	for s := uint64(1); s <= 2000; s += 7 {
		r.add(framesOf(s, s+6, 100))
		got, ok := r.after(s-1, 1000)
		if !ok || len(got) != 7 {
			t.Fatalf("after(%d) = %v, %v", s-1, seqsOf(got), ok)
		}
		seen, want = append(seen, got), append(want, seqsOf(got))
		if r.dropped > len(r.frames) {
			t.Fatalf("%d dropped frames still in the array beside %d kept", r.dropped, len(r.frames))
		}
	}
	for i, fs := range seen {
		for j, f := range fs {
			if f.Item.Seq != want[i][j] || len(f.SSE) != 100 {
				t.Fatalf("handed-out frame %d of batch %d changed: seq %d, want %d", j, i, f.Item.Seq, want[i][j])
			}
		}
	}
	if cap(r.frames) > 4*recentItems {
		t.Fatalf("array of %d frames for at most %d kept", cap(r.frames), recentItems)
	}
}

// countingStore counts the reads a terminal's catch-up makes.
type countingStore struct {
	baton.Store
	published, topic atomic.Int64
}

func (s *countingStore) Published(ctx context.Context, topic string, after uint64, limit int) ([]baton.Published, error) {
	s.published.Add(1)
	return s.Store.Published(ctx, topic, after, limit)
}

func (s *countingStore) Topic(ctx context.Context, topic string) (baton.TopicInfo, error) {
	s.topic.Add(1)
	return s.Store.Topic(ctx, topic)
}

// TestCatchUpFromRecentFrames: terminals that start or resume near the
// head take the feed's recent frames (the very frames the live terminals
// got) with no store read; behind them they read the store.
func TestCatchUpFromRecentFrames(t *testing.T) {
	mem := memstore.New(nil)
	st := &countingStore{Store: mem}
	p := newPublisher(t, mem, testTopic)
	h := startHub(t, st, Options{})
	live := subscribe(t, h, testTopic, 0)
	lr := newReceiver(t, live, 0)
	waitFeedStarted(t, h)
	p.publish(100)
	lr.until(100, 5*time.Second)
	waitFeedAt(t, h, 100) // the live terminal may have read the store first

	reads, pubs := st.published.Load()+st.topic.Load(), st.published.Load()
	for _, after := range []uint64{0, 1, 50, 99, 100} {
		term := subscribe(t, h, testTopic, after)
		r := newReceiver(t, term, after)
		r.until(100, 5*time.Second)
	}
	if got := st.published.Load() + st.topic.Load() - reads; got != 0 {
		t.Fatalf("%d store reads for terminals within the recent frames (%d of published items), want 0", got, st.published.Load()-pubs)
	}
	// Shared, not encoded again: the first frame a new terminal gets is
	// the one the live terminal got.
	term := subscribe(t, h, testTopic, 0)
	ev, err := term.Next(context.Background())
	if err != nil || ev.Kind != EventItems {
		t.Fatalf("next: %+v, %v", ev, err)
	}
	if recent, _ := live.f.recentAfter(0, 1); &recent[0].SSE[0] != &ev.Frames[0].SSE[0] {
		t.Fatal("a new terminal's frame was encoded again, not shared")
	}

	// Past the bound, the oldest are read from the store, then the rest
	// (and what is published meanwhile) follow in order.
	p.publish(recentItems + 50)
	lr.until(uint64(100+recentItems+50), 5*time.Second)
	reads = st.published.Load()
	term = subscribe(t, h, testTopic, 0)
	r := newReceiver(t, term, 0)
	r.until(200, 5*time.Second)
	p.publish(10)
	r.until(uint64(110+recentItems+50), 5*time.Second)
	if st.published.Load() == reads {
		t.Fatal("a terminal behind the recent frames did not read the store")
	}
}

// TestRecentFramesSeededByAStoreRead: with no live batch yet (items
// published before the first terminal), the first terminal's store read
// serves those that join after it.
func TestRecentFramesSeededByAStoreRead(t *testing.T) {
	mem := memstore.New(nil)
	st := &countingStore{Store: mem}
	p := newPublisher(t, mem, testTopic)
	p.publish(20)
	h := startHub(t, st, Options{})
	first := subscribe(t, h, testTopic, 0)
	waitFeedStarted(t, h)
	newReceiver(t, first, 0).until(20, 5*time.Second)
	// The first terminal may have read before the feed knew its position:
	// then it did not seed. One more that reads the store does.
	if _, ok := first.f.recentAfter(0, 1); !ok {
		newReceiver(t, subscribe(t, h, testTopic, 0), 0).until(20, 5*time.Second)
	}
	reads := st.published.Load()
	for range 10 {
		newReceiver(t, subscribe(t, h, testTopic, 0), 0).until(20, 5*time.Second)
	}
	if got := st.published.Load() - reads; got != 0 {
		t.Fatalf("%d store reads by terminals after a seeded one, want 0", got)
	}
}

// liveFeed starts a hub on a fresh store with one terminal on testTopic,
// publishes n items and waits until the feed delivered them.
func liveFeed(t *testing.T, n int) (*memstore.Store, *Hub, *Terminal) {
	t.Helper()
	mem := memstore.New(nil)
	p := newPublisher(t, mem, testTopic)
	h := startHub(t, mem, Options{})
	live := subscribe(t, h, testTopic, 0)
	waitFeedStarted(t, h)
	p.publish(n)
	newReceiver(t, live, 0).until(uint64(n), 5*time.Second)
	waitFeedAt(t, h, uint64(n))
	return mem, h, live
}

// TestRecentFramesGoneWithTheirTopic: a terminal that starts after a
// topic was deleted and published again gets the new items (the store
// goes on from the kept ledger, or from 0), not the recent frames of the
// old ones.
func TestRecentFramesGoneWithTheirTopic(t *testing.T) {
	mem, h, live := liveFeed(t, 5)
	f := live.f
	if _, ok := f.recentAfter(0, 1); !ok {
		t.Fatal("no recent frames after a delivery")
	}
	if _, err := mem.Handle().DeleteTopic(context.Background(), testTopic, baton.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	// The feed learns of the deletion (checkDeleted); its recent frames go.
	poll.Until(t, 10*time.Second, "the feed forgets its recent frames", func() error {
		if _, ok := f.recentAfter(0, 1); ok {
			return errors.New("still there")
		}
		return nil
	})
	// Published again: the store goes on from the kept ledger, or from 0.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := mem.Append(ctx, testTopic, []baton.Update{{ID: "k", Value: json.RawMessage(`"new"`), MsgID: "new-1"}}); err != nil {
		t.Fatalf("append: %v", err)
	}
	newPublisher(t, mem, testTopic).commitAll()
	term := subscribe(t, h, testTopic, 0)
	for {
		ev, err := term.Next(ctx)
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		if ev.Kind != EventItems {
			continue // a reset to where the topic starts now
		}
		if v := string(ev.Frames[0].Item.Value); v != `"new"` || len(ev.Frames) != 1 {
			t.Fatalf("after re-creation got %d frames, the first %d: %s; want only the new item", len(ev.Frames), ev.Frames[0].Item.Seq, v)
		}
		return
	}
}

// waitFeedStarted waits until the topic's feed knows its position.
func waitFeedStarted(t *testing.T, h *Hub) {
	t.Helper()
	poll.Until(t, 5*time.Second, "the feed starts", func() error {
		h.mu.Lock()
		f := h.feeds[testTopic]
		h.mu.Unlock()
		if f == nil {
			return errors.New("no feed")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.positioned {
			return errors.New("not positioned")
		}
		return nil
	})
}

// TestEndTopicForgetsRecentFrames: the node that served a DELETE ends the
// topic's terminals at once, and the recent frames go with them.
func TestEndTopicForgetsRecentFrames(t *testing.T) {
	_, h, live := liveFeed(t, 3)
	if _, ok := live.f.recentAfter(0, 1); !ok {
		t.Fatal("no recent frames after a delivery")
	}
	h.EndTopic(testTopic)
	if _, ok := live.f.recentAfter(0, 1); ok {
		t.Fatal("recent frames kept after EndTopic")
	}
}

// TestRecentFramesBudget: the feeds of a hub together keep at most
// Options.RecentBytes; a feed whose batch would pass it keeps none, and a
// feed that stops gives its share back.
func TestRecentFramesBudget(t *testing.T) {
	var total atomic.Int64
	one := int64(frameBytes(framesOf(1, 1, 100)[0]))
	a := recentFrames{total: &total, budget: 3 * one}
	b := recentFrames{total: &total, budget: 3 * one}
	a.add(framesOf(1, 2, 100))
	b.add(framesOf(1, 2, 100)) // would make 4
	if len(a.frames) != 2 || len(b.frames) != 0 {
		t.Fatalf("kept %d and %d frames, want 2 and 0", len(a.frames), len(b.frames))
	}
	if got := total.Load(); got != 2*one {
		t.Fatalf("total %d, want %d", got, 2*one)
	}
	a.add(framesOf(3, 3, 100))
	a.reset()
	if got := total.Load(); got != 0 {
		t.Fatalf("total %d after reset, want 0", got)
	}

	// Through a hub: terminals on two topics, then none.
	mem := memstore.New(nil)
	h := startHub(t, mem, Options{RecentBytes: 1 << 20})
	for _, topic := range []string{"a", "b"} {
		p := newPublisher(t, mem, topic)
		term, err := h.Subscribe(context.Background(), topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := newReceiver(t, term, 0)
		p.publish(5)
		r.until(5, 5*time.Second)
		poll.Until(t, 5*time.Second, "the feed keeps its frames", func() error {
			if _, ok := term.f.recentAfter(0, 1); !ok {
				return errors.New("none yet")
			}
			return nil
		})
		term.Close()
	}
	poll.Until(t, 5*time.Second, "the stopped feeds give their bytes back", func() error {
		if n := h.recent.Load(); n != 0 {
			return fmt.Errorf("%d bytes still counted", n)
		}
		return nil
	})
}
