package hub

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/baton-pub/baton"
)

// EventKind says what an Event carries.
type EventKind uint8

const (
	// EventItems carries published items.
	EventItems EventKind = iota + 1
	// EventReset says the terminal's position is no longer kept: the next
	// item it receives has seq Earliest.
	EventReset
)

// Event is what a terminal receives.
type Event struct {
	Kind EventKind
	// Frames are consecutive published items, in seq order (EventItems).
	// The slice may be shared with other terminals: read only.
	Frames []Frame
	// Earliest is the earliest seq still kept (EventReset).
	Earliest uint64
}

// Terminal is one consumer of a topic. Next and TryNext must be called from
// one goroutine at a time; Close, Ready, OnReady and Err from any.
type Terminal struct {
	h     *Hub
	f     *feed
	topic string

	pending []Event // events read by Subscribe, handed out first; consumer only

	mu sync.Mutex
	// last is the seq of the last item handed to the consumer. Only the
	// consumer writes it (under mu); the feed reads it to skip batches
	// the consumer already got from the store.
	last uint64
	// catchingUp is true while the consumer must read the store before it
	// may take live batches: at the start, after a gap, after a resync.
	catchingUp bool
	// gen counts resyncs, so that a catch-up that began before a resync
	// does not end the catch-up the resync asked for.
	gen    uint64
	queue  [][]Frame // live batches, oldest first
	queued int       // items in queue
	err    error     // why the terminal ended; nil while open
	stop   func() bool

	ready     chan struct{} // capacity 1: coalesced "something to do"
	onReady   func()        // called by wake, under mu; see OnReady
	closeOnce sync.Once
}

func newTerminal(h *Hub, topic string, after uint64) *Terminal {
	return &Terminal{
		h:          h,
		topic:      topic,
		last:       after,
		catchingUp: true,
		ready:      make(chan struct{}, 1),
	}
}

// Topic returns the terminal's topic.
func (t *Terminal) Topic() string { return t.topic }

// Last returns the seq of the last item handed out (or the position the
// terminal started from).
func (t *Terminal) Last() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Ready receives a value when TryNext may have something new to return, or
// the terminal ended. Wake-ups are coalesced: after one, call TryNext until
// it reports nothing.
func (t *Terminal) Ready() <-chan struct{} { return t.ready }

// OnReady registers f to be called whenever Ready would receive a value:
// TryNext may have something new, or the terminal ended. It lets a consumer
// wait for many terminals without a goroutine each. f replaces any earlier
// function; nil removes it. Wake-ups before OnReady are not replayed: call
// TryNext after registering.
//
// f is called on the goroutine that wakes the terminal (the topic's feed,
// Close, the hub closing), with the terminal's and possibly the feed's lock
// held. It must therefore only schedule: not block, not call any method of
// this or another Terminal or of the Hub, and take no lock that is ever held
// while calling into the hub. A lock of the consumer's own, taken by f and
// held by no caller of the hub, is fine (lock order feed.mu → Terminal.mu →
// that lock).
func (t *Terminal) OnReady(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.onReady = f
}

// Err returns why the terminal ended (ErrSlowTerminal, baton.ErrClosed), or
// nil while it is open.
func (t *Terminal) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Close ends the terminal and leaves the feed. It is idempotent.
func (t *Terminal) Close() {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		stop := t.stop
		t.mu.Unlock()
		if stop != nil {
			stop()
		}
		t.fail(baton.ErrClosed)
		t.h.leave(t)
	})
}

// Next returns the terminal's next event, waiting for one if need be. It
// returns the terminal's error once it ended, or ctx's error.
func (t *Terminal) Next(ctx context.Context) (Event, error) {
	for {
		ev, ok, err := t.TryNext(ctx)
		if err != nil || ok {
			return ev, err
		}
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-t.ready:
		}
	}
}

// TryNext returns the next event if one is ready. It does not wait for live
// items, but it may read the store (under ctx) to catch up or fill a gap.
// ok is false when there is nothing to hand out yet: wait on Ready.
func (t *Terminal) TryNext(ctx context.Context) (ev Event, ok bool, err error) {
	if err := t.Err(); err != nil {
		return Event{}, false, err
	}
	if len(t.pending) > 0 {
		ev := t.pending[0]
		t.pending[0] = Event{}
		t.pending = t.pending[1:]
		return ev, true, nil
	}
	for {
		t.mu.Lock()
		if t.err != nil {
			err := t.err
			t.mu.Unlock()
			return Event{}, false, err
		}
		if t.catchingUp {
			gen := t.gen
			t.mu.Unlock()
			ev, ok, err := t.catchUp(ctx, gen)
			if err != nil || ok {
				return ev, ok, err
			}
			continue // caught up: take live batches
		}
		if len(t.queue) == 0 {
			t.mu.Unlock()
			return Event{}, false, nil
		}
		b := t.queue[0]
		t.queue[0] = nil
		t.queue = t.queue[1:]
		t.queued -= len(b)
		// Drop what the consumer already has.
		i := 0
		for i < len(b) && b[i].Item.Seq <= t.last {
			i++
		}
		b = b[i:]
		if len(b) == 0 {
			t.mu.Unlock()
			continue
		}
		if b[0].Item.Seq != t.last+1 {
			// A gap: the feed delivered the missing items before the
			// terminal joined it. Everything before b is committed: read
			// it from the store.
			t.catchingUp = true
			t.mu.Unlock()
			continue
		}
		t.last = b[len(b)-1].Item.Seq
		t.mu.Unlock()
		return Event{Kind: EventItems, Frames: b}, true, nil
	}
}

// start runs in Subscribe: it checks the starting position and reads the
// first batch, which it keeps as pending events.
func (t *Terminal) start(ctx context.Context) error {
	if t.last > 0 && !t.f.recentCovers(t.last) {
		info, err := t.topicInfo(ctx)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", t.topic, err)
		}
		if t.last > info.LastSeq {
			// A position beyond anything ever appended: the store was
			// replaced, or the client is confused. Say so; never wait
			// silently for items that will be numbered otherwise.
			t.pending = append(t.pending, t.resetTo(earliest(info)))
		}
	}
	t.mu.Lock()
	gen := t.gen
	t.mu.Unlock()
	ev, ok, err := t.catchUp(ctx, gen)
	if err != nil {
		return err
	}
	if ok {
		t.pending = append(t.pending, ev)
	}
	return nil
}

// catchUp reads the next batch: from the feed's recent frames if they
// answer for the terminal's position (recent.go), else from the store. It
// ends the catch-up (the terminal then takes live batches) when there is
// nothing more, unless a resync came in meanwhile.
func (t *Terminal) catchUp(ctx context.Context, gen uint64) (Event, bool, error) {
	batch := t.h.opts.ReadBatch
	frames, ok := t.f.recentAfter(t.last, batch)
	if !ok {
		var ev Event
		var err error
		if frames, ev, ok, err = t.readStore(ctx); err != nil || ok {
			return ev, ok, err
		}
		t.f.seed(frames)
	}
	t.mu.Lock()
	if len(frames) > 0 {
		t.last = frames[len(frames)-1].Item.Seq
	}
	// Live batches the catch-up has overtaken would only count against
	// the queue's bound: drop them now.
	n := 0
	for n < len(t.queue) && t.queue[n][len(t.queue[n])-1].Item.Seq <= t.last {
		t.queued -= len(t.queue[n])
		t.queue[n] = nil
		n++
	}
	t.queue = t.queue[n:]
	if len(frames) < batch && t.gen == gen {
		t.catchingUp = false
	}
	t.mu.Unlock()
	if len(frames) == 0 {
		return Event{}, false, nil
	}
	return Event{Kind: EventItems, Frames: frames}, true, nil
}

// readStore reads the next batch after the terminal's position from the
// store and encodes it; or, when that position is no longer kept, returns
// the reset event (ok).
func (t *Terminal) readStore(ctx context.Context) ([]Frame, Event, bool, error) {
	ps, err := t.h.store.Published(ctx, t.topic, t.last, t.h.opts.ReadBatch)
	if errors.Is(err, baton.ErrTrimmed) {
		info, err := t.topicInfo(ctx)
		if err != nil {
			return nil, Event{}, false, fmt.Errorf("read %s: %w", t.topic, err)
		}
		e := earliest(info)
		if e <= t.last+1 {
			return nil, Event{}, false, fmt.Errorf("read %s after %d: trimmed, but earliest kept is %d", t.topic, t.last, e)
		}
		return nil, t.resetTo(e), true, nil
	}
	if err != nil {
		return nil, Event{}, false, fmt.Errorf("read %s after %d: %w", t.topic, t.last, err)
	}
	if len(ps) > 0 && ps[0].Seq != t.last+1 {
		return nil, Event{}, false, fmt.Errorf("read %s after %d: store returned seq %d", t.topic, t.last, ps[0].Seq)
	}
	if len(ps) == 0 {
		return nil, Event{}, false, nil
	}
	frames, err := newFrames(ps)
	return frames, Event{}, false, err
}

// resetTo moves the terminal to just before seq e and returns the reset event.
func (t *Terminal) resetTo(e uint64) Event {
	t.mu.Lock()
	t.last = e - 1
	t.mu.Unlock()
	return Event{Kind: EventReset, Earliest: e}
}

// topicInfo reads the topic's summary; a topic the store does not know yet
// is empty.
func (t *Terminal) topicInfo(ctx context.Context) (baton.TopicInfo, error) {
	info, err := t.h.store.Topic(ctx, t.topic)
	if errors.Is(err, baton.ErrNotFound) {
		return baton.TopicInfo{Topic: t.topic}, nil
	}
	return info, err
}

// earliest is the first seq a terminal can still receive.
func earliest(info baton.TopicInfo) uint64 {
	if info.FirstSeq > 0 {
		return info.FirstSeq
	}
	return info.LastSeq + 1 // nothing kept: only new items
}

// enqueue is called by the feed with feed.mu held. It reports whether t
// stays on the feed.
func (t *Terminal) enqueue(b []Frame, limit int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return false
	}
	if b[len(b)-1].Item.Seq <= t.last {
		return true // the consumer read these from the store already
	}
	if t.queued+len(b) > limit {
		// The consumer is behind by more than the bound: end the terminal
		// rather than hold more or wait. Its client resumes from its last
		// seq and catches up from the store.
		t.err = ErrSlowTerminal
		t.queue, t.queued = nil, 0
		t.wake()
		return false
	}
	t.queue = append(t.queue, b)
	t.queued += len(b)
	t.wake()
	return true
}

// resync is called by the feed with feed.mu held.
func (t *Terminal) resync() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.catchingUp = true
	t.gen++
	t.wake()
}

// fail ends t with err unless it already ended.
func (t *Terminal) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.err = err
		t.queue, t.queued = nil, 0
	}
	t.wake()
}

// wake is called with t.mu held.
func (t *Terminal) wake() {
	if t.onReady != nil {
		t.onReady()
	}
	select {
	case t.ready <- struct{}{}:
	default:
	}
}
