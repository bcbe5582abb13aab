package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/baton-pub/baton/internal/leasetest"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/wire"
)

const testTopic = "quotes"

// publisher appends and commits items the way a lease holder does.
type publisher struct {
	tb    testing.TB
	st    baton.Store
	topic string
	lease baton.Lease
	n     int
}

func newPublisher(tb testing.TB, st baton.Store, topic string) *publisher {
	tb.Helper()
	lease, err := leasetest.Acquire(context.Background(), st, topic, "node-a", time.Hour)
	if err != nil {
		tb.Fatalf("acquire: %v", err)
	}
	return &publisher{tb: tb, st: st, topic: topic, lease: lease}
}

// appendN appends n updates without publishing them.
func (p *publisher) appendN(n int) {
	p.tb.Helper()
	ups := make([]baton.Update, n)
	for i := range ups {
		p.n++
		ups[i] = baton.Update{ID: fmt.Sprintf("k%d", p.n), Value: json.RawMessage(fmt.Sprintf(`{"n":%d}`, p.n)), MsgID: fmt.Sprintf("m%d", p.n)}
	}
	if _, err := p.st.Append(context.Background(), p.topic, ups); err != nil {
		p.tb.Fatalf("append: %v", err)
	}
}

// commitAll publishes every appended item, in commits of at most 100.
func (p *publisher) commitAll() { p.commitUpTo(math.MaxUint64) }

// commitUpTo publishes the appended items up to seq last, in commits of at
// most 100; those after it stay unpublished.
func (p *publisher) commitUpTo(last uint64) {
	p.tb.Helper()
	ctx := context.Background()
	for {
		cur, err := p.st.Cursor(ctx, p.topic)
		if err != nil {
			p.tb.Fatalf("cursor: %v", err)
		}
		if cur.Seq >= last {
			return
		}
		items, err := p.st.Items(ctx, p.topic, cur.Seq, int(min(100, last-cur.Seq)))
		if err != nil {
			p.tb.Fatalf("items: %v", err)
		}
		if len(items) == 0 {
			return
		}
		c := baton.Commit{Topic: p.topic, Epoch: p.lease.Epoch, Holder: p.lease.Holder, PrevSeq: cur.Seq, Items: items, At: time.Now()}
		if _, err := p.st.Commit(ctx, c); err != nil {
			p.tb.Fatalf("commit: %v", err)
		}
	}
}

func (p *publisher) publish(n int) {
	p.tb.Helper()
	p.appendN(n)
	p.commitAll()
}

func startHub(tb testing.TB, st baton.Store, opts Options) *Hub {
	tb.Helper()
	h := New(st, opts)
	if err := h.Start(context.Background()); err != nil {
		tb.Fatalf("start: %v", err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func subscribe(tb testing.TB, h *Hub, topic string, after uint64) *Terminal {
	tb.Helper()
	term, err := h.Subscribe(context.Background(), topic, after)
	if err != nil {
		tb.Fatalf("subscribe: %v", err)
	}
	tb.Cleanup(term.Close)
	return term
}

// silentStore loses every wake-up: hints may be dropped, and the hub must
// still deliver.
type silentStore struct{ baton.Store }

func (silentStore) Subscribe(string, baton.Signal) baton.Subscription { return silentSub{} }

type silentSub struct{}

func (silentSub) C() <-chan struct{} { return nil }
func (silentSub) Close()             {}

// gatedStore wakes the subscribers to commits only when the test sends on
// wake.
type gatedStore struct {
	baton.Store
	wake chan struct{}
}

func (g gatedStore) Subscribe(topic string, s baton.Signal) baton.Subscription {
	if s != baton.SignalCommit {
		return g.Store.Subscribe(topic, s)
	}
	return gatedSub(g.wake)
}

type gatedSub chan struct{}

func (s gatedSub) C() <-chan struct{} { return s }
func (gatedSub) Close()               {}

// receiver collects what a terminal delivers and checks the order.
type receiver struct {
	tb     testing.TB
	term   *Terminal
	next   uint64 // the seq expected next
	resets []uint64
}

func newReceiver(tb testing.TB, term *Terminal, after uint64) *receiver {
	return &receiver{tb: tb, term: term, next: after + 1}
}

// until reads events until seq upto was delivered. Any gap or duplicate
// fails the test.
func (r *receiver) until(upto uint64, d time.Duration) {
	r.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for r.next <= upto {
		ev, err := r.term.Next(ctx)
		if err != nil {
			r.tb.Fatalf("next (want seq %d): %v", r.next, err)
		}
		r.take(ev)
	}
}

func (r *receiver) take(ev Event) {
	r.tb.Helper()
	switch ev.Kind {
	case EventReset:
		r.resets = append(r.resets, ev.Earliest)
		r.next = ev.Earliest
	case EventItems:
		if len(ev.Frames) == 0 {
			r.tb.Fatalf("empty items event")
		}
		for _, f := range ev.Frames {
			if f.Item.Seq != r.next {
				r.tb.Fatalf("got seq %d, want %d (gap or duplicate)", f.Item.Seq, r.next)
			}
			if !f.Item.Verify() {
				r.tb.Fatalf("seq %d: hash does not verify", f.Item.Seq)
			}
			r.next++
		}
	default:
		r.tb.Fatalf("unknown event kind %d", ev.Kind)
	}
}

func TestCatchUpThenLive(t *testing.T) {
	st := memstore.New(nil)
	p := newPublisher(t, st, testTopic)
	p.publish(25)
	h := startHub(t, st, Options{ReadBatch: 10})
	term := subscribe(t, h, testTopic, 0)
	r := newReceiver(t, term, 0)
	r.until(25, 5*time.Second)
	p.publish(7)
	r.until(32, 5*time.Second)
	if n := h.Terminals(testTopic); n != 1 {
		t.Fatalf("Terminals = %d, want 1", n)
	}
}

func TestResumeFromPosition(t *testing.T) {
	st := memstore.New(nil)
	p := newPublisher(t, st, testTopic)
	p.publish(20)
	h := startHub(t, st, Options{})
	term := subscribe(t, h, testTopic, 13)
	r := newReceiver(t, term, 13)
	r.until(20, 5*time.Second)
	p.publish(1)
	r.until(21, 5*time.Second)
}

// TestNoGapNoDuplicateUnderLoad joins terminals at random positions and
// times while items are committed, and checks each one gets every item
// after its position exactly once, in order, and never beyond the cursor.
func TestNoGapNoDuplicateUnderLoad(t *testing.T) {
	st := memstore.New(nil)
	p := newPublisher(t, st, testTopic)
	h := startHub(t, st, Options{ReadBatch: 16, BufferItems: 64})
	const total = 3000

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	join := func(after uint64) {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		term, err := h.Subscribe(ctx, testTopic, after)
		if err != nil {
			errs <- err
			return
		}
		defer term.Close()
		next := after + 1
		for next <= total {
			ev, err := term.Next(ctx)
			if errors.Is(err, ErrSlowTerminal) {
				// Allowed: resume from where it stopped, as a client would.
				term.Close()
				if term, err = h.Subscribe(ctx, testTopic, next-1); err != nil {
					errs <- err
					return
				}
				defer term.Close()
				continue
			}
			if err != nil {
				errs <- fmt.Errorf("after %d: next %d: %w", after, next, err)
				return
			}
			if ev.Kind != EventItems {
				errs <- fmt.Errorf("after %d: unexpected event %+v", after, ev)
				return
			}
			cur, _ := st.Cursor(ctx, testTopic)
			for _, f := range ev.Frames {
				if f.Item.Seq != next {
					errs <- fmt.Errorf("after %d: got seq %d, want %d", after, f.Item.Seq, next)
					return
				}
				if f.Item.Seq > cur.Seq {
					errs <- fmt.Errorf("seq %d delivered beyond the cursor %d", f.Item.Seq, cur.Seq)
					return
				}
				next++
			}
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	published := 0
	for published < total {
		n := 1 + rng.IntN(40)
		if published+n > total {
			n = total - published
		}
		// The newest three stay appended but unpublished until the next
		// round, while terminals join and read: none may be delivered.
		p.appendN(n)
		p.commitUpTo(uint64(max(p.n-3, 0)))
		published += n
		if rng.IntN(4) == 0 {
			wg.Add(1)
			go join(uint64(rng.IntN(max(p.n-3, 0) + 1))) // a published position
		}
	}
	p.commitAll()
	wg.Add(1)
	go join(0)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestUnpublishedNeverDelivered(t *testing.T) {
	st := memstore.New(nil)
	p := newPublisher(t, st, testTopic)
	p.publish(5)
	p.appendN(5) // 6..10 appended, not published
	h := startHub(t, st, Options{Recheck: 10 * time.Millisecond})
	term := subscribe(t, h, testTopic, 0)
	r := newReceiver(t, term, 0)
	r.until(5, 5*time.Second)
	// Let the feed re-check a few times; nothing may come.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if ev, err := term.Next(ctx); err == nil {
		t.Fatalf("got %+v before anything was published", ev)
	}
	p.commitAll()
	r.until(10, 5*time.Second)
}

func TestResetOnTrimmedPosition(t *testing.T) {
	st := memstore.New(nil)
	p := newPublisher(t, st, testTopic)
	p.publish(10)
	if _, err := st.Trim(context.Background(), testTopic, 6); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, st, Options{})
	for _, after := range []uint64{0, 2, 4} {
		term := subscribe(t, h, testTopic, after)
		r := newReceiver(t, term, after)
		r.until(10, 5*time.Second)
		if len(r.resets) != 1 || r.resets[0] != 6 {
			t.Fatalf("after %d: resets %v, want [6]", after, r.resets)
		}
	}
	// From the earliest kept position on, no reset.
	term := subscribe(t, h, testTopic, 5)
	r := newReceiver(t, term, 5)
	r.until(10, 5*time.Second)
	if len(r.resets) != 0 {
		t.Fatalf("after 5: resets %v, want none", r.resets)
	}
}

func TestResetWhenTrimmedWhileLagging(t *testing.T) {
	st := memstore.New(nil)
	gated := gatedStore{Store: st, wake: make(chan struct{}, 1)}
	p := newPublisher(t, st, testTopic)
	p.publish(5)
	h := startHub(t, gated, Options{ReadBatch: 5, Recheck: time.Hour})
	term := subscribe(t, h, testTopic, 0)
	// The first batch (1..5) was read by Subscribe. The feed reads nothing
	// more until it is woken: publish and trim past the first batch before
	// anyone reads on, so neither the feed nor the terminal ever sees 6..11.
	waitFeedAt(t, h, 5)
	p.publish(10)
	if _, err := st.Trim(context.Background(), testTopic, 12); err != nil {
		t.Fatal(err)
	}
	gated.wake <- struct{}{}
	r := newReceiver(t, term, 0)
	r.until(15, 5*time.Second)
	if len(r.resets) != 1 || r.resets[0] != 12 {
		t.Fatalf("resets %v, want [12]", r.resets)
	}
}

func TestResetWhenAfterBeyondLast(t *testing.T) {
	st := memstore.New(nil)
	p := newPublisher(t, st, testTopic)
	p.publish(3)
	h := startHub(t, st, Options{})
	term := subscribe(t, h, testTopic, 1000)
	r := newReceiver(t, term, 1000)
	ev, err := term.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.take(ev)
	r.until(3, 5*time.Second)
	if len(r.resets) != 1 || r.resets[0] != 1 {
		t.Fatalf("resets %v, want [1]", r.resets)
	}
}

func TestSlowTerminalDisconnected(t *testing.T) {
	st := memstore.New(nil)
	p := newPublisher(t, st, testTopic)
	h := startHub(t, st, Options{BufferItems: 50, ReadBatch: 10})
	slow := subscribe(t, h, testTopic, 0)
	fast := subscribe(t, h, testTopic, 0)
	r := newReceiver(t, fast, 0)
	for i := 0; i < 10; i++ {
		p.publish(10)
		r.until(uint64(10*(i+1)), 5*time.Second)
	}
	poll.Until(t, 5*time.Second, "the slow terminal to be cut off", func() error {
		if err := slow.Err(); !errors.Is(err, ErrSlowTerminal) {
			return fmt.Errorf("slow terminal err = %v", err)
		}
		return nil
	})
	if _, err := slow.Next(context.Background()); !errors.Is(err, ErrSlowTerminal) {
		t.Fatalf("Next = %v, want ErrSlowTerminal", err)
	}
	if n := h.Terminals(testTopic); n != 1 {
		t.Fatalf("Terminals = %d, want 1", n)
	}
}

func TestMissedWakeRecovered(t *testing.T) {
	st := silentStore{memstore.New(nil)}
	p := newPublisher(t, st, testTopic)
	h := startHub(t, st, Options{Recheck: 20 * time.Millisecond})
	term := subscribe(t, h, testTopic, 0)
	p.publish(3)
	newReceiver(t, term, 0).until(3, 5*time.Second)
}

func TestFeedStopsWithLastTerminal(t *testing.T) {
	st := memstore.New(nil)
	h := startHub(t, st, Options{})
	a := subscribe(t, h, testTopic, 0)
	b := subscribe(t, h, testTopic, 0)
	if n := h.Terminals(testTopic); n != 2 {
		t.Fatalf("Terminals = %d, want 2", n)
	}
	a.Close()
	a.Close() // idempotent
	if n := h.Terminals(testTopic); n != 1 {
		t.Fatalf("Terminals = %d, want 1", n)
	}
	b.Close()
	h.mu.Lock()
	n := len(h.feeds)
	h.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d feeds left running", n)
	}
	if _, err := a.Next(context.Background()); !errors.Is(err, baton.ErrClosed) {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}
}

func TestSubscribeContextClosesTerminal(t *testing.T) {
	st := memstore.New(nil)
	h := startHub(t, st, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	term, err := h.Subscribe(ctx, testTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	poll.Until(t, 5*time.Second, "the cancelled terminal to leave", func() error {
		if n := h.Terminals(testTopic); n != 0 {
			return fmt.Errorf("Terminals = %d", n)
		}
		return nil
	})
	if !errors.Is(term.Err(), baton.ErrClosed) {
		t.Fatalf("Err = %v, want ErrClosed", term.Err())
	}
}

func TestLifecycle(t *testing.T) {
	st := memstore.New(nil)
	h := New(st, Options{})
	if _, err := h.Subscribe(context.Background(), testTopic, 0); err == nil {
		t.Fatal("Subscribe before Start succeeded")
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err == nil {
		t.Fatal("second Start succeeded")
	}
	if _, err := h.Subscribe(context.Background(), "bad topic", 0); !errors.Is(err, baton.ErrInvalid) {
		t.Fatalf("bad topic: %v, want ErrInvalid", err)
	}
	term, err := h.Subscribe(context.Background(), testTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	done := make(chan error, 1)
	go func() {
		_, err := term.Next(context.Background())
		done <- err
	}()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, baton.ErrClosed) {
			t.Fatalf("Next after hub Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked after hub Close")
	}
	if _, err := h.Subscribe(context.Background(), testTopic, 0); !errors.Is(err, baton.ErrClosed) {
		t.Fatalf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if err := h.Start(context.Background()); !errors.Is(err, baton.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
}

// TestStartContextEndsNothing: the hub runs until Close, not until Start's
// context ends (baton.Service): terminals are ended by Close, after the
// node has handed over.
func TestStartContextEndsNothing(t *testing.T) {
	st := memstore.New(nil)
	h := New(st, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	term := subscribe(t, h, testTopic, 0)
	cancel()
	p := newPublisher(t, st, testTopic)
	p.publish(3)
	for want := uint64(1); want <= 3; {
		ev, err := term.Next(context.Background())
		if err != nil || ev.Kind != EventItems {
			t.Fatalf("after Start's context ended: %+v, %v (want seq %d)", ev, err, want)
		}
		for _, f := range ev.Frames {
			if f.Item.Seq != want {
				t.Fatalf("seq %d, want %d", f.Item.Seq, want)
			}
			want++
		}
	}
}

func TestFrameEncoding(t *testing.T) {
	p := baton.Published{
		Item: baton.Item{Topic: "t", Seq: 42, ID: "a\"b\\c<d>\u2028", MsgID: "m1",
			Value: json.RawMessage("{\n  \"x\": [1, 2],\n  \"s\": \"line\\nbreak <b>&amp;</b> \u2028\"\n}")},
		Epoch: 7, Publisher: "node-b",
	}
	p.Hash = baton.HashItem(p.Topic, baton.Update{ID: p.ID, Value: p.Value, MsgID: p.MsgID})
	f, err := NewFrame(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(f.SSE)
	if !strings.HasPrefix(s, "id: 42\nevent: item\ndata: ") || !strings.HasSuffix(s, "\n\n") {
		t.Fatalf("frame %q", s)
	}
	data := strings.TrimSuffix(strings.TrimPrefix(s, "id: 42\nevent: item\ndata: "), "\n\n")
	if strings.ContainsAny(data, "\r\n") {
		t.Fatalf("data spans lines: %q", data)
	}
	var d wire.Item
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, p.Value)
	if d.Seq != 42 || d.ID != p.ID || d.MsgID != "m1" || d.Epoch != 7 || d.Publisher != "node-b" || d.Hash != p.Hash || string(d.Value) != compact.String() {
		t.Fatalf("decoded %+v", d)
	}
	if got := string(AppendResetSSE(nil, 6)); got != "id: 5\nevent: reset\ndata: {\"earliest\":6}\n\n" {
		t.Fatalf("reset frame %q", got)
	}
}

// BenchmarkFanout measures delivering committed items to 1000 terminals on
// one topic, end to end: commit, wake, read, encode once, enqueue to every
// terminal, and every consumer draining its queue.
func BenchmarkFanout(b *testing.B) {
	const terminals, batch = 1000, 100
	st := memstore.New(nil)
	p := newPublisher(b, st, testTopic)
	// A large bound: this measures throughput, not the slow-terminal path.
	h := startHub(b, st, Options{BufferItems: 1 << 22})
	var wg sync.WaitGroup
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	done := 0
	total := uint64(b.N * batch)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range terminals {
		term := subscribe(b, h, testTopic, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for term.Last() < total {
				if _, err := term.Next(ctx); err != nil {
					b.Errorf("next: %v", err)
					break
				}
			}
			mu.Lock()
			done++
			cond.Broadcast()
			mu.Unlock()
		}()
	}
	b.ResetTimer()
	for range b.N {
		p.publish(batch)
	}
	mu.Lock()
	for done < terminals {
		cond.Wait()
	}
	mu.Unlock()
	b.StopTimer()
	wg.Wait()
	b.ReportMetric(float64(total*terminals)/b.Elapsed().Seconds(), "deliveries/s")
}

func TestResetOnUnknownTopicPosition(t *testing.T) {
	st := memstore.New(nil)
	h := startHub(t, st, Options{})
	term := subscribe(t, h, "fresh", 5)
	ev, err := term.Next(context.Background())
	if err != nil || ev.Kind != EventReset || ev.Earliest != 1 {
		t.Fatalf("got %+v, %v; want a reset to 1", ev, err)
	}
	p := newPublisher(t, st, "fresh")
	p.publish(2)
	r := newReceiver(t, term, 0)
	r.until(2, 5*time.Second)
}

// TestOnReady drives many terminals from one goroutine, woken only by
// OnReady: every item arrives in order, and the end of a terminal (Close,
// the hub closing) wakes it too.
func TestOnReady(t *testing.T) {
	st := memstore.New(nil)
	p := newPublisher(t, st, testTopic)
	p.publish(5) // caught up from the store
	h := New(st, Options{ReadBatch: 8})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	// The consumer's run queue: f only marks a terminal and pokes.
	var (
		mu      sync.Mutex
		pending = map[int]bool{}
		poke    = make(chan struct{}, 1)
	)
	const n = 20
	terms := make([]*Terminal, n)
	recv := make([]*receiver, n)
	for i := range terms {
		terms[i] = subscribe(t, h, testTopic, 0)
		recv[i] = newReceiver(t, terms[i], 0)
		terms[i].OnReady(func() {
			mu.Lock()
			pending[i] = true
			mu.Unlock()
			select {
			case poke <- struct{}{}:
			default:
			}
		})
		mu.Lock()
		pending[i] = true // what Subscribe read: wake-ups before OnReady are not replayed
		mu.Unlock()
	}
	ended := make([]error, n)
	// drain serves the marked terminals until cond holds.
	drain := func(cond func() bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for !cond() {
			mu.Lock()
			ready := pending
			pending = map[int]bool{}
			mu.Unlock()
			for i := range ready {
				for ended[i] == nil {
					ev, ok, err := terms[i].TryNext(context.Background())
					if err != nil {
						ended[i] = err
						break
					}
					if !ok {
						break
					}
					recv[i].take(ev)
				}
			}
			if len(ready) > 0 {
				continue
			}
			select {
			case <-poke:
			case <-deadline:
				t.Fatal("condition not met: lost wake-up?")
			}
		}
	}
	for round := range 10 {
		p.publish(1 + round*3)
		drain(func() bool {
			for _, r := range recv {
				if r.next <= uint64(p.n) {
					return false
				}
			}
			return true
		})
	}
	terms[0].Close()
	drain(func() bool { return ended[0] != nil })
	if !errors.Is(ended[0], baton.ErrClosed) {
		t.Fatalf("closed terminal: %v", ended[0])
	}
	h.Close()
	drain(func() bool {
		for _, err := range ended {
			if err == nil {
				return false
			}
		}
		return true
	})
	for i, err := range ended {
		if !errors.Is(err, baton.ErrClosed) {
			t.Fatalf("terminal %d ended with %v", i, err)
		}
	}
}

// unavailableStore fails every read of published items while down is set,
// as a Redis store does when the replicas do not confirm a read
// (redis/confirm.go).
type unavailableStore struct {
	baton.Store
	down  atomic.Bool
	fails atomic.Int64
}

func (s *unavailableStore) Published(ctx context.Context, topic string, after uint64, limit int) ([]baton.Published, error) {
	if s.down.Load() {
		s.fails.Add(1)
		return nil, fmt.Errorf("read: %w", baton.ErrUnavailable)
	}
	return s.Store.Published(ctx, topic, after, limit)
}

// TestFailedReadRetried: a feed whose read failed reads again by itself,
// with no further commit to wake it and long before Recheck.
func TestFailedReadRetried(t *testing.T) {
	st := &unavailableStore{Store: memstore.New(nil)}
	p := newPublisher(t, st, testTopic)
	h := startHub(t, st, Options{Recheck: time.Hour})
	term := subscribe(t, h, testTopic, 0)
	// Caught up and live: what comes next comes from the feed.
	p.publish(1)
	r := newReceiver(t, term, 0)
	r.until(1, 5*time.Second)
	if ev, ok, err := term.TryNext(t.Context()); ok || err != nil {
		t.Fatalf("after seq 1: %+v, %v; want nothing yet", ev, err)
	}
	st.down.Store(true)
	p.publish(3)
	poll.True(t, 5*time.Second, "the feed's read to fail", func() bool { return st.fails.Load() > 0 })
	st.down.Store(false)
	r.until(4, 10*time.Second)
}
