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
}

// published is a commit as age retention sees it: every item up to seq
// was published at or before at. One entry holds the commits of one slot
// (age/ageSlots from its first, since): merged commits move at and seq
// forward, never since, so that under steady traffic the oldest entry
// still ages out (at most one slot late).
type published struct {
	seq   uint64
	at    time.Time
	since time.Time
}

// trimmer keeps a topic's queue to its retention (baton.Retention: the
// topic's own, else the node's --retain and --retain-age), for the
// topic's lease holder. The publisher reports each commit (committed); a
// goroutine of the trimmer's trims at most once per interval, so a trim
// never sits on the commit path, and exists only while there is something
// to trim, now or by age later: an idle topic costs no goroutine and no
// timer (docs/design.md, node leases and "Topic lifecycle"). It reads the
// topic's retention when it starts (at the lease's start, with the cursor:
// what an earlier holder published ages from the cursor's time) and before
// every trim, so a change applies at the next commit. Store.Trim deletes
// only published items and never the cursor's own (docs/design.md, step 5).
type trimmer struct {
	store  trimStore
	topic  string
	defN   uint64        // --retain: 0 keeps every item
	defAge time.Duration // --retain-age: 0 has no age limit
	every  time.Duration
	clock  baton.Clock
	log    *slog.Logger
	ctx    context.Context

	mu        sync.Mutex
	items     uint64        // the count kept; 0: no limit
	age       time.Duration // the age kept; 0: no limit
	cursor    uint64        // the latest cursor seen
	entries   []published   // oldest first, while age > 0
	ageBefore uint64        // age retention trims below this seq
	trimmed   uint64        // the last trim that succeeded
	readAt    time.Time     // when the retention was last read (zero: never)
	reloadDue bool          // committed asks run to read the retention again
	running   bool          // a goroutine trims or waits for an age to pass
	waitAge   bool          // it waits for an age to pass: kick wakes it
	kick      chan struct{} // capacity 1
	wg        sync.WaitGroup
	// hold, if set, is waited for before the first read of the retention:
	// a lease's trimmer is not on the path to its first commit.
	hold func(context.Context)
}

// newTrimmer returns a trimmer that trims until ctx ends (wait waits for
// it then). It starts one goroutine, which reads the retention and the
// cursor and ends at once if there is nothing to trim.
func newTrimmer(ctx context.Context, st trimStore, topic string, items uint64, age time.Duration, every time.Duration, clock baton.Clock, log *slog.Logger) *trimmer {
	return newTrimmerFrom(ctx, st, topic, baton.Cursor{}, items, age, every, clock, log, nil)
}

// newTrimmerFrom is newTrimmer for a lease whose cursor was read just
// now (cur): the trimmer starts from it rather than reading it again.
// hold, if not nil, is waited for before the retention is first read.
func newTrimmerFrom(ctx context.Context, st trimStore, topic string, cur baton.Cursor, items uint64, age time.Duration, every time.Duration, clock baton.Clock, log *slog.Logger, hold func(context.Context)) *trimmer {
	t := &trimmer{store: st, topic: topic, defN: items, defAge: age, every: every, clock: clock, log: log, ctx: ctx,
		items: items, age: age, kick: make(chan struct{}, 1), hold: hold}
	t.mu.Lock()
	t.observeLocked(cur)
	t.start(true)
	t.mu.Unlock()
	return t
}

// committed records a new cursor. It is the publisher's OnCommit, so it
// must not block.
func (t *trimmer) committed(c baton.Cursor, _ int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observeLocked(c)
	now := t.clock.Now()
	before, due := t.planLocked(now)
	stale := now.Sub(t.readAt) >= t.every // a retention change applies at the next commit
	t.reloadDue = t.reloadDue || stale
	switch {
	case t.running && t.waitAge && (stale || before > t.trimmed):
		// Waiting for an age to pass: come back for the retention, or
		// for the count's trim.
		select {
		case t.kick <- struct{}{}:
		default:
		}
	case before > t.trimmed || !due.IsZero() || stale:
		t.start(false)
	}
}

// start starts the goroutine unless it runs; with reload it reads the
// retention first (run does, when reloadDue). Callers hold mu.
func (t *trimmer) start(reload bool) {
	if t.running || t.ctx.Err() != nil {
		return
	}
	t.running = true
	t.wg.Add(1)
	t.reloadDue = t.reloadDue || reload
	go func() {
		defer t.wg.Done()
		t.run()
	}()
}

// observeLocked records cursor c: its seq for count retention, its time
// for age retention. Callers hold mu.
func (t *trimmer) observeLocked(c baton.Cursor) {
	if c.Seq <= t.cursor {
		return
	}
	t.cursor = c.Seq
	if t.age <= 0 {
		return
	}
	e := published{seq: c.Seq, at: c.UpdatedAt, since: c.UpdatedAt}
	if n := len(t.entries); n > 0 && e.at.Sub(t.entries[n-1].since) < t.age/ageSlots {
		t.entries[n-1].seq, t.entries[n-1].at = e.seq, e.at // later, so never early
		return
	}
	t.entries = append(t.entries, e)
}

// planLocked returns the seq to trim below at now, and when age retention
// has more to trim (zero if nothing is waiting for it). Callers hold mu.
func (t *trimmer) planLocked(now time.Time) (before uint64, due time.Time) {
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

// reload reads the topic's retention, and the cursor if age retention has
// no commit time to go by (the lease's start, or an age just set).
func (t *trimmer) reload() {
	r, err := t.store.Retention(t.ctx, t.topic)
	if err != nil && t.ctx.Err() == nil {
		t.log.Debug("read retention", "topic", t.topic, "err", err)
	}
	items, age := r.Effective(t.defN, t.defAge)
	t.mu.Lock()
	t.readAt = t.clock.Now()
	if age != t.age {
		t.entries, t.ageBefore = nil, 0
	}
	t.items, t.age = items, age
	seed := t.cursor == 0 || age > 0 && len(t.entries) == 0
	if seed {
		t.cursor = 0 // observe the cursor again, with its time
	}
	t.mu.Unlock()
	if !seed {
		return
	}
	c, err := t.store.Cursor(t.ctx, t.topic)
	if err != nil {
		if t.ctx.Err() == nil {
			t.log.Warn("read cursor", "topic", t.topic, "err", err)
		}
		return
	}
	t.mu.Lock()
	t.observeLocked(c)
	t.mu.Unlock()
}

// run trims, an interval after there is something to trim, at most once
// per interval, and waits for an age to pass while age retention holds
// commits; it ends when neither is left, or ctx ends. A trim that fails is
// logged and tried again an interval later.
func (t *trimmer) run() {
	t.mu.Lock()
	h := t.hold
	t.hold = nil // once: a later goroutine does not wait
	t.mu.Unlock()
	if h != nil {
		h(t.ctx)
	}
	for {
		t.mu.Lock()
		if t.reloadDue {
			t.reloadDue = false
			t.mu.Unlock()
			t.reload()
			t.mu.Lock()
		}
		before, due := t.planLocked(t.clock.Now())
		// A trim comes an interval after there is something to trim, so
		// at most one per interval; an age to pass is only waited for.
		wait, trim := t.every, before > t.trimmed
		switch {
		case t.ctx.Err() != nil, !trim && due.IsZero():
			t.running = false
			t.mu.Unlock()
			return
		case !trim:
			wait = max(due.Sub(t.clock.Now()), 0)
		}
		t.waitAge = !trim
		t.mu.Unlock()
		ok := t.sleep(wait, !trim)
		t.mu.Lock()
		t.waitAge = false
		t.mu.Unlock()
		if !ok || !trim {
			continue // ctx ended (the next turn ends), the age passed, or a kick
		}
		t.reload()
		t.mu.Lock()
		before, _ = t.planLocked(t.clock.Now())
		t.mu.Unlock()
		_, err := t.store.Trim(t.ctx, t.topic, before)
		if err != nil && t.ctx.Err() == nil {
			t.log.Warn("trim", "topic", t.topic, "err", err)
		}
		if err == nil {
			t.mu.Lock()
			t.trimmed = max(t.trimmed, before)
			t.mu.Unlock()
		}
	}
}

// sleep waits d, or, with kickable, until committed kicks it; it reports
// false if ctx ended first or it was kicked.
func (t *trimmer) sleep(d time.Duration, kickable bool) bool {
	var kick chan struct{}
	if kickable {
		kick = t.kick
	}
	timer := t.clock.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.ctx.Done():
		return false
	case <-kick:
		return false
	case <-timer.C():
		return true
	}
}

// wait waits, once ctx has ended, for the trim under way.
func (t *trimmer) wait() { t.wg.Wait() }

// idle reports whether no goroutine trims or waits (for tests).
func (t *trimmer) idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.running
}
