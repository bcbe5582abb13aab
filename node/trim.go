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
// the trimmer's own goroutine (run) trims at most once per interval, so a
// trim never sits on the commit path. Store.Trim deletes only published
// items and never the cursor's own, whose hash a successor looks up (see
// docs/design.md, step 5).
type trimmer struct {
	queue  baton.Queue
	topic  string
	retain uint64
	every  time.Duration
	clock  baton.Clock
	log    *slog.Logger

	mu     sync.Mutex
	wanted uint64 // trim the items below this seq; 0: nothing yet
	kick   chan struct{}
}

func newTrimmer(q baton.Queue, topic string, retain uint64, every time.Duration, clock baton.Clock, log *slog.Logger) *trimmer {
	return &trimmer{queue: q, topic: topic, retain: retain, every: every, clock: clock, log: log, kick: make(chan struct{}, 1)}
}

// committed records a new cursor. It is the publisher's OnCommit, so it
// must not block.
func (t *trimmer) committed(c baton.Cursor, _ int) {
	if c.Seq <= t.retain {
		return
	}
	t.mu.Lock()
	t.wanted = c.Seq - t.retain + 1
	t.mu.Unlock()
	t.retry()
}

// run trims what committed asked for, at most once per interval, until
// ctx ends. An idle topic costs it nothing: it waits for a commit. A trim
// that fails is logged and tried again an interval later.
func (t *trimmer) run(ctx context.Context) {
	var trimmed uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		}
		timer := t.clock.NewTimer(t.every)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
		t.mu.Lock()
		w := t.wanted
		t.mu.Unlock()
		if w > trimmed {
			if _, err := t.queue.Trim(ctx, t.topic, w); err != nil {
				t.log.Warn("trim", "topic", t.topic, "err", err)
				t.retry()
			} else {
				trimmed = w
			}
		}
	}
}

// retry asks run for another try.
func (t *trimmer) retry() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}
