// Package clocktest is a manual baton.Clock for tests that drive time.
package clocktest

import (
	"sort"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// Clock is a fake clock that moves only when Advance is called.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

// New returns a clock set to start.
func New(start time.Time) *Clock { return &Clock{now: start} }

var _ baton.Clock = (*Clock)(nil)

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock passes now+d.
func (c *Clock) NewTimer(d time.Duration) baton.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, ch: make(chan time.Time, 1), at: c.now.Add(d), active: true}
	c.timers = append(c.timers, t)
	if d <= 0 {
		c.fireLocked()
	}
	return t
}

// Advance moves the clock by d and fires the timers that are due, in order.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

// Timers counts the active timers: tests wait for a component to arm its
// timer before advancing.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if t.active {
			n++
		}
	}
	return n
}

func (c *Clock) fireLocked() {
	sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.active && !t.at.After(c.now) {
			t.active = false
			select {
			case t.ch <- c.now:
			default:
			}
			continue
		}
		if t.active {
			keep = append(keep, t)
		}
	}
	c.timers = keep
}

type timer struct {
	c      *Clock
	ch     chan time.Time
	at     time.Time
	active bool
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.at = t.c.now.Add(d)
	if !t.active {
		t.active = true
		t.c.timers = append(t.c.timers, t)
	}
	t.c.fireLocked()
	return was
}

// Next is the time the earliest active timer fires, if any.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	found := false
	for _, t := range c.timers {
		if t.active && (!found || t.at.Before(next)) {
			next, found = t.at, true
		}
	}
	return next, found
}
