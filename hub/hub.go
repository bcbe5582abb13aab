// Package hub fans committed items out to the terminals of one node.
//
// For every topic that has at least one terminal, the hub runs one feed
// goroutine: it wakes on the store's SignalCommit (and, because wake-ups are
// hints that may be lost, on a periodic re-check), reads the newly published
// items in batches, encodes each item's Server-Sent Events frame once, and
// hands the batch, shared and read only, to every terminal's bounded queue.
//
// A terminal is a consumer that wants every published item after a position,
// in order, with no gap and no duplicate. It catches up from the store (or
// from the frames its feed delivered last, when they cover its position:
// recent.go) and joins the live feed; whenever the next live batch does not
// follow its last delivered seq it reads the gap from the store, and it
// drops what it already has. A terminal whose position is no longer kept gets an explicit reset
// event. A live terminal whose queue overflows is disconnected with
// ErrSlowTerminal; the feed never waits for a terminal.
//
// Goroutines and locks: the feed goroutine is the only writer of a feed's
// position; Terminal.Next and TryNext run on the consumer's goroutine (one at
// a time per terminal) and do the terminal's store reads there, so a slow
// catch-up never holds up a feed. Locks are never nested: Hub.mu, feed.mu and
// Terminal.mu are each taken alone, except that feed.mu is held while a
// terminal's mu is taken to enqueue a batch (order: feed.mu, then
// Terminal.mu).
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
)

// Defaults of Options.
const (
	DefaultBufferItems = 4096
	DefaultReadBatch   = 1000
	// DefaultRecheck is rare: the engines wake every subscription after
	// they may have lost a notification (baton.Notifier), and every feed
	// pays each re-read, so at thousands of followed topics a short one
	// would read the store thousands of times a second for nothing.
	DefaultRecheck = 30 * time.Second
)

// checkGap is the least time between two deletion checks of a feed (a
// read of the cursor when a wake-up found nothing new, checkDeleted): a
// burst of wake-ups, as when thousands of topics are handed over at once,
// costs one check a second per feed, not one per wake-up.
const checkGap = time.Second

// retryFirst is the first wait before a feed reads again after a failed
// read; it doubles up to Recheck.
const retryFirst = 50 * time.Millisecond

// ErrSlowTerminal ends a terminal whose queue overflowed because its
// consumer did not keep up with the live feed. The consumer may resume from
// the last seq it delivered.
var ErrSlowTerminal = errors.New("slow terminal: live queue overflowed")

// errNotStarted is returned by Subscribe before Start.
var errNotStarted = errors.New("hub not started")

// Options configure a Hub. Zero values take the defaults.
type Options struct {
	Logger *slog.Logger
	// BufferItems bounds each terminal's live queue, in items.
	BufferItems int
	// ReadBatch is the most items read from the store at once. It is
	// clamped to BufferItems so that one batch always fits a queue.
	ReadBatch int
	// Recheck is how often a feed re-reads the store without a wake-up,
	// the fallback for a lost hint.
	Recheck time.Duration
	// RecentBytes bounds the recent frames of all the hub's feeds
	// together (recent.go).
	RecentBytes int64
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BufferItems <= 0 {
		o.BufferItems = DefaultBufferItems
	}
	if o.ReadBatch <= 0 {
		o.ReadBatch = DefaultReadBatch
	}
	if o.ReadBatch > o.BufferItems {
		o.ReadBatch = o.BufferItems
	}
	if o.Recheck <= 0 {
		o.Recheck = DefaultRecheck
	}
	if o.RecentBytes <= 0 {
		o.RecentBytes = DefaultRecentBytes
	}
	return o
}

type hubState uint8

const (
	stateNew hubState = iota
	stateStarted
	stateClosed
)

var _ baton.Service = (*Hub)(nil)

// Hub is the per-node fan-out of committed items to terminals.
type Hub struct {
	store baton.Store
	opts  Options
	log   *slog.Logger

	mu     sync.Mutex
	state  hubState
	ctx    context.Context // set by Start; cancelled by Close
	cancel context.CancelFunc
	feeds  map[string]*feed // active topics
	topics topicWatcher     // multi.go
	local  map[string]bool  // topics this node's publisher runs (local.go)
	recent atomic.Int64     // bytes of the feeds' recent frames (recent.go)
	wg     sync.WaitGroup   // feed goroutines, the topic watcher
}

// New returns a hub reading from store. Call Start before Subscribe.
func New(store baton.Store, opts Options) *Hub {
	opts = opts.withDefaults()
	return &Hub{
		store: store,
		opts:  opts,
		log:   opts.Logger,
		feeds: make(map[string]*feed),
	}
}

// Start makes the hub ready for terminals (see baton.Service). Feed
// goroutines run until Close, not until ctx ends: terminals are ended by
// Close, after the node has handed its leases over.
func (h *Hub) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.state {
	case stateStarted:
		return errors.New("start hub: already started")
	case stateClosed:
		return fmt.Errorf("start hub: %w", baton.ErrClosed)
	}
	h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.state = stateStarted
	return nil
}

// Close stops every feed and waits for their goroutines. Open terminals end
// with baton.ErrClosed. Close is idempotent; every call returns once the
// feeds have stopped.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.state == stateStarted {
		h.cancel()
	}
	h.state = stateClosed
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}

// Terminals returns the number of this node's live terminals on topic.
func (h *Hub) Terminals(topic string) int {
	h.mu.Lock()
	f := h.feeds[topic]
	h.mu.Unlock()
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.terms)
}

// Subscribe returns a terminal that receives every published item of topic
// with seq > after, in order, then the live ones. The terminal is closed
// when ctx is done or by Terminal.Close; the caller must do one of the two.
//
// Subscribe reads the first batch from the store before it returns, so that
// a store failure is the caller's error rather than an ended stream.
func (h *Hub) Subscribe(ctx context.Context, topic string, after uint64) (*Terminal, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return nil, err
	}
	t := newTerminal(h, topic, after)
	if err := h.join(t); err != nil {
		if t.f != nil {
			t.Close() // release the feed it counted on
		}
		return nil, err
	}
	if err := t.start(ctx); err != nil {
		t.Close()
		return nil, err
	}
	t.mu.Lock()
	t.stop = context.AfterFunc(ctx, t.Close)
	t.mu.Unlock()
	return t, nil
}

// join registers t with its topic's feed, starting the feed if t is the
// topic's first terminal.
func (h *Hub) join(t *Terminal) error {
	h.mu.Lock()
	switch h.state {
	case stateNew:
		h.mu.Unlock()
		return fmt.Errorf("subscribe %s: %w", t.topic, errNotStarted)
	case stateClosed:
		h.mu.Unlock()
		return fmt.Errorf("subscribe %s: %w", t.topic, baton.ErrClosed)
	}
	f := h.feeds[t.topic]
	if f == nil {
		ctx, cancel := context.WithCancel(h.ctx)
		f = &feed{h: h, topic: t.topic, cancel: cancel, terms: make(map[*Terminal]struct{}),
			kick: make(chan struct{}, 1), local: h.local[t.topic],
			recent: recentFrames{total: &h.recent, budget: h.opts.RecentBytes}}
		h.feeds[t.topic] = f
		h.wg.Add(1)
		go f.run(ctx)
	}
	f.refs++
	t.f = f
	h.mu.Unlock()

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		// The hub is closing: the feed stopped before t could join.
		return fmt.Errorf("subscribe %s: %w", t.topic, baton.ErrClosed)
	}
	f.terms[t] = struct{}{}
	return nil
}

// leave unregisters t and stops the feed when t was its last terminal.
func (h *Hub) leave(t *Terminal) {
	f := t.f
	if f == nil {
		return
	}
	f.mu.Lock()
	delete(f.terms, t)
	f.mu.Unlock()

	h.mu.Lock()
	defer h.mu.Unlock()
	f.refs--
	if f.refs == 0 {
		if h.feeds[f.topic] == f {
			delete(h.feeds, f.topic)
		}
		f.cancel()
	}
}

// feed is the fan-out of one topic.
type feed struct {
	h      *Hub
	topic  string
	cancel context.CancelFunc
	refs   int // terminals not yet closed; guarded by Hub.mu

	kick chan struct{} // Published or Publishing (local.go)
	// pos: the feed's position once it started (tests wait for it).
	pos atomic.Uint64

	mu      sync.Mutex
	terms   map[*Terminal]struct{} // terminals receiving live batches
	stopped bool
	// The holder's hand-off (local.go): this node's publisher runs (local),
	// the batches it handed over not yet taken, and whether the store
	// must be read at the next wake whatever woke it.
	local        bool
	pending      [][]baton.Published
	pendingItems int
	readStore    bool
	// The feed's position once known (positioned): the seq of the last
	// item it delivered, or of the cursor it started from; and the frames
	// it delivered last, up to it (recent.go).
	end        uint64
	positioned bool
	recent     recentFrames
}

// run is the feed goroutine.
func (f *feed) run(ctx context.Context) {
	h := f.h
	defer h.wg.Done()
	defer f.stop()

	// Subscribe before reading the cursor so that no commit is missed.
	sub := h.store.Subscribe(f.topic, baton.SignalCommit)
	defer sub.Close()
	tick := time.NewTicker(h.opts.Recheck)
	defer tick.Stop()
	// check fires a deletion check put off by checkGap.
	check := time.NewTimer(time.Hour)
	check.Stop()
	defer check.Stop()

	// retry reads again after a failed read (a store unavailable, or a
	// read the replicas did not confirm: redis/confirm.go) without waiting
	// for the next commit or Recheck.
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := retryFirst

	var (
		last     uint64
		started  bool
		failing  bool
		checked  time.Time // when checkDeleted last ran
		checking bool      // check is armed
	)
	// store: this wake reads the store (not only the hand-off's batches).
	store := true
	for {
		var err error
		var empty bool
		if !started {
			var cur baton.Cursor
			if cur, err = h.store.Cursor(ctx, f.topic); err == nil {
				last, started = cur.Seq, true
				// Terminals that joined before the cursor was read may have
				// caught up to an earlier position, and the feed will not
				// deliver what lies between: let them read it themselves.
				f.resync(last)
			}
		}
		if started {
			last, empty, err = f.pump(ctx, last, store)
			f.pos.Store(last)
		}
		if empty && !checking {
			if wait := checkGap - time.Since(checked); wait > 0 {
				check.Reset(wait)
				checking = true
			} else {
				f.checkDeleted(ctx, last)
				checked = time.Now()
			}
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			h.log.Warn("hub: read published items", "topic", f.topic, "err", err)
		case err == nil && failing:
			failing = false
			h.log.Info("hub: reading published items again", "topic", f.topic)
		}
		if err != nil {
			retry.Reset(backoff)
			backoff = min(2*backoff, h.opts.Recheck)
		} else {
			backoff = retryFirst
		}
		store = true
		select {
		case <-ctx.Done():
			return
		case <-sub.C():
			store = false // unless this node's publisher stopped (local.go)
		case <-f.kick:
			store = false
		case <-retry.C:
		case <-tick.C:
		case <-check.C:
			checking = false
			f.checkDeleted(ctx, last)
			checked = time.Now()
		}
	}
}

// pump delivers the hand-off's batches that follow last (local.go), then,
// if store or the hand-off cannot say, reads and delivers every published
// item after last, in batches; it returns the new position, and empty if
// the store had nothing new.
func (f *feed) pump(ctx context.Context, last uint64, store bool) (uint64, bool, error) {
	h := f.h
	ps, store, local := f.takeLocal(last, store)
	if len(ps) > 0 {
		frames, err := newFrames(ps)
		if err != nil {
			return last, false, err
		}
		f.deliver(frames)
		last = ps[len(ps)-1].Seq
	}
	if !store && !local {
		// Woken by another node's commit: what its message carried
		// saves the read, where the store can vouch for it (local.go).
		var empty bool
		var err error
		if last, empty, store, err = f.pumpRecent(last); err != nil || !store {
			return last, empty, err
		}
	}
	if !store {
		return last, false, nil
	}
	for {
		ps, err := h.store.Published(ctx, f.topic, last, h.opts.ReadBatch)
		if errors.Is(err, baton.ErrTrimmed) {
			// The feed fell behind trimming (a long store outage). Jump to
			// the cursor; terminals read the rest, or get their reset, from
			// the store.
			cur, cerr := h.store.Cursor(ctx, f.topic)
			if cerr != nil {
				return last, false, cerr
			}
			h.log.Warn("hub: feed position trimmed; terminals resync from the store",
				"topic", f.topic, "after", last, "cursor", cur.Seq)
			last = cur.Seq
			f.resync(last)
			continue
		}
		if err != nil {
			return last, false, err
		}
		if len(ps) == 0 {
			return last, true, nil
		}
		frames, err := newFrames(ps)
		if err != nil {
			return last, false, err
		}
		f.deliver(frames)
		last = ps[len(ps)-1].Seq
		if len(ps) < h.opts.ReadBatch {
			return last, false, nil
		}
	}
}

// deliver hands a batch to every terminal and keeps it among the recent
// frames. It never blocks on a consumer.
func (f *feed) deliver(frames []Frame) {
	if len(frames) == 0 {
		return
	}
	limit := f.h.opts.BufferItems
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recent.add(frames)
	f.end = frames[len(frames)-1].Item.Seq
	for t := range f.terms {
		if !t.enqueue(frames, limit) {
			delete(f.terms, t)
		}
	}
}

// resync moves the feed to pos, with no recent frames, and makes every
// terminal re-read the store before it takes its next live batch.
func (f *feed) resync(pos uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.end, f.positioned = pos, true
	f.recent.reset()
	for t := range f.terms {
		t.resync()
	}
}

// stop ends the feed: terminals still on it (only when the hub closes) end
// with ErrClosed.
func (f *feed) stop() {
	f.mu.Lock()
	f.stopped = true
	f.recent.reset() // back to the hub's budget
	for t := range f.terms {
		t.fail(baton.ErrClosed)
		delete(f.terms, t)
	}
	f.mu.Unlock()

	h := f.h
	h.mu.Lock()
	if h.feeds[f.topic] == f {
		delete(h.feeds, f.topic)
	}
	h.mu.Unlock()
}
