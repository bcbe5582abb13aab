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

// ageSlots bounds the commit times a trimmer remembers for age retention:
// commits closer together than age/ageSlots share one entry, so an item is
// trimmed at most age/ageSlots late, never early.
const ageSlots = 32

// trimStore is what a trimmer needs of the store.
type trimStore interface {
	Trim(ctx context.Context, topic string, before uint64) (int, error)
	Cursor(ctx context.Context, topic string) (baton.Cursor, error)
	Retention(ctx context.Context, topic string) (baton.Retention, error)
	Subscribe(topic string, signals baton.Signal) baton.Subscription
}

// published is a commit as age retention sees it: every item up to seq
// was published at or before at.
type published struct {
	seq uint64
	at  time.Time
}

// trimmer keeps a topic's queue to its retention (baton.Retention: the
// topic's own, else the node's --retain and --retain-age), for the
// topic's lease holder. The publisher reports each commit (committed);
// the trimmer's own goroutine (run) trims at most once per interval, so a
// trim never sits on the commit path. Store.Trim deletes only published
// items and never the cursor's own (see docs/design.md, step 5).
//
// An idle topic costs it nothing: it waits for a commit, a change of the
// topic's lock or retention (SignalLock), or, only while it remembers
// commits that age retention will trim, a timer at the oldest one's
// expiry (docs/design.md, "Topic lifecycle").
type trimmer struct {
	store   trimStore
	topic   string
	defN    uint64        // --retain: 0 keeps every item
	defAge  time.Duration // --retain-age: 0 has no age limit
	every   time.Duration
	clock   baton.Clock
	log     *slog.Logger
	kick    chan struct{}
	started chan struct{} // closed once run read the retention (tests)

	mu        sync.Mutex
	items     uint64        // the count kept; 0: no limit
	age       time.Duration // the age kept; 0: no limit
	cursor    uint64        // the latest cursor seen
	entries   []published   // oldest first, while age > 0
	ageBefore uint64        // age retention trims below this seq
}

func newTrimmer(st trimStore, topic string, items uint64, age time.Duration, every time.Duration, clock baton.Clock, log *slog.Logger) *trimmer {
	return &trimmer{store: st, topic: topic, defN: items, defAge: age, every: every, clock: clock, log: log,
		items: items, age: age, kick: make(chan struct{}, 1), started: make(chan struct{})}
}

// committed records a new cursor. It is the publisher's OnCommit, so it
// must not block.
func (t *trimmer) committed(c baton.Cursor, _ int) {
	t.observe(c)
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// observe records cursor c: its seq for count retention, its time for
// age retention.
func (t *trimmer) observe(c baton.Cursor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.Seq <= t.cursor {
		return
	}
	t.cursor = c.Seq
	if t.age <= 0 {
		return
	}
	e := published{seq: c.Seq, at: c.UpdatedAt}
	if n := len(t.entries); n > 0 && e.at.Sub(t.entries[n-1].at) < t.age/ageSlots {
		t.entries[n-1] = e // later, so never early
		return
	}
	t.entries = append(t.entries, e)
}

// plan returns the seq to trim below at now, and when age retention has
// more to trim (zero if nothing is waiting for it).
func (t *trimmer) plan(now time.Time) (before uint64, due time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.items > 0 && t.cursor > t.items {
		before = t.cursor - t.items + 1
	}
	for len(t.entries) > 0 && !t.entries[0].at.Add(t.age).After(now) {
		t.ageBefore = max(t.ageBefore, t.entries[0].seq+1)
		t.entries = t.entries[1:]
	}
	if len(t.entries) > 0 {
		due = t.entries[0].at.Add(t.age)
	}
	return max(before, t.ageBefore), due
}

// reload reads the topic's retention and its cursor: at the start of the
// lease (what an earlier holder published ages from the cursor's time),
// and when SignalLock says the retention may have changed.
func (t *trimmer) reload(ctx context.Context) {
	r, err := t.store.Retention(ctx, t.topic)
	if err != nil && ctx.Err() == nil {
		t.log.Debug("read retention", "topic", t.topic, "err", err)
	}
	items, age := r.Effective(t.defN, t.defAge)
	t.mu.Lock()
	if age != t.age {
		t.entries, t.ageBefore = nil, 0
	}
	t.items, t.age = items, age
	fresh := age > 0 && len(t.entries) == 0
	if fresh {
		t.cursor = 0 // observe the cursor again, with its time
	}
	t.mu.Unlock()
	c, err := t.store.Cursor(ctx, t.topic)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Warn("read cursor", "topic", t.topic, "err", err)
		}
		return
	}
	t.observe(c)
}

// run trims until ctx ends: at most once per interval, an interval after
// there is something to trim. A trim that fails is logged and tried again
// an interval later.
func (t *trimmer) run(ctx context.Context) {
	sub := t.store.Subscribe(t.topic, baton.SignalLock)
	defer sub.Close()
	t.reload(ctx)
	close(t.started)
	var trimmed uint64
	for {
		before, due := t.plan(t.clock.Now())
		if before > trimmed {
			if !t.wait(ctx, t.every, sub) {
				return
			}
			before, _ = t.plan(t.clock.Now())
			if _, err := t.store.Trim(ctx, t.topic, before); err != nil {
				if ctx.Err() != nil {
					return
				}
				t.log.Warn("trim", "topic", t.topic, "err", err)
			} else {
				trimmed = before
			}
			continue
		}
		var timer baton.Timer
		var fire <-chan time.Time
		if !due.IsZero() {
			timer = t.clock.NewTimer(max(due.Sub(t.clock.Now()), 0))
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-t.kick:
		case <-sub.C():
			t.reload(ctx)
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// wait waits d, re-reading the retention on SignalLock meanwhile; it
// reports false if ctx ended.
func (t *trimmer) wait(ctx context.Context, d time.Duration, sub baton.Subscription) bool {
	timer := t.clock.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-sub.C():
			t.reload(ctx)
		case <-timer.C():
			return true
		}
	}
}
