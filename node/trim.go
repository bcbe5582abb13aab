package node

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// trimEvery is how often a lease holder trims its topic at most.
const trimEvery = time.Second

// trimmer keeps a topic's queue to its last retain published items, for
// the topic's lease holder. The publisher reports each commit (committed);
// a goroutine of the trimmer's trims at most once per interval, so a trim
// never sits on the commit path, and exists only while there is something
// to trim: an idle topic costs no goroutine and no timer (docs/design.md,
// node leases). Store.Trim deletes only published items and never the
// cursor's own, whose hash a successor looks up (see docs/design.md, step
// 5).
type trimmer struct {
	queue  baton.Queue
	topic  string
	retain uint64
	every  time.Duration
	clock  baton.Clock
	log    *slog.Logger
	ctx    context.Context

	mu      sync.Mutex
	wanted  uint64 // trim the items below this seq; 0: nothing yet
	trimmed uint64 // the last trim that succeeded
	running bool   // a goroutine trims
	wg      sync.WaitGroup
}

// newTrimmer returns a trimmer that trims until ctx ends; wait waits for
// it then.
func newTrimmer(ctx context.Context, q baton.Queue, topic string, retain uint64, every time.Duration, clock baton.Clock, log *slog.Logger) *trimmer {
	return &trimmer{queue: q, topic: topic, retain: retain, every: every, clock: clock, log: log, ctx: ctx}
}

// committed records a new cursor. It is the publisher's OnCommit, so it
// must not block.
func (t *trimmer) committed(c baton.Cursor, _ int) {
	if c.Seq <= t.retain {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.wanted = c.Seq - t.retain + 1
	if t.running || t.wanted <= t.trimmed || t.ctx.Err() != nil {
		return
	}
	t.running = true
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		t.run()
	}()
}

// run trims what committed asked for, an interval after it asked, until
// nothing is left to trim or ctx ends. A trim that fails is logged and
// tried again an interval later.
func (t *trimmer) run() {
	for {
		timer := t.clock.NewTimer(t.every)
		select {
		case <-t.ctx.Done():
			timer.Stop()
			t.mu.Lock()
			t.running = false
			t.mu.Unlock()
			return
		case <-timer.C():
		}
		t.mu.Lock()
		w := t.wanted
		t.mu.Unlock()
		_, err := t.queue.Trim(t.ctx, t.topic, w)
		if err != nil && t.ctx.Err() == nil {
			t.log.Warn("trim", "topic", t.topic, "err", err)
		}
		t.mu.Lock()
		if err == nil {
			t.trimmed = max(t.trimmed, w)
		}
		if t.wanted <= t.trimmed || t.ctx.Err() != nil {
			t.running = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
}

// wait waits, once ctx has ended, for the trim under way.
func (t *trimmer) wait() { t.wg.Wait() }

// idle reports whether no goroutine trims (for tests).
func (t *trimmer) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.running
}
