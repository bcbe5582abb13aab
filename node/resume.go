package node

import (
	"context"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// resumeHoldMax bounds how long a lease's checkpointer waits for the
// node's other leases to resume (resumeGate), and how long a lease with an
// empty queue counts as resuming. At 2 s, a crash hand-over of 3,334
// topics on SQLite that took longer than that had the checkpointers'
// setups and the witness's rounds start in its middle, and took twice as
// long (p99 3.0-6.0 s against 2.1-3.5 s at 5 s, docs/benchmarks.md,
// "Fewer statements per topic in a mass hand-over"). Nothing waits for
// them: commits go on unsigned until the checkpointer starts, and the
// next checkpoint covers them.
const resumeHoldMax = 5 * time.Second

// resumeQuiet is how long the gate stays shut after the last lease it
// counted resumed or the last race ended (resumeGate).
const resumeQuiet = 100 * time.Millisecond

// resumeGate holds back the work of a new lease that is not on the path
// to its first commit (the checkpointer's setup: the ledger copy opened,
// the latest checkpoint read and verified) while leases of this node are
// still resuming. When a crash hands thousands of topics over at once,
// that setup was a quarter of a survivor's CPU in the hand-over
// (docs/benchmarks.md, "Ten thousand topics"); first commits now go
// first, and the checkpointers follow, at most resumeHoldMax later. The
// node's witness holds its rounds back the same way (mirroring and
// cosigning every topic's new commits, a quarter of a survivor's CPU on
// SQLite: ledger.Witness.HoldRounds).
//
// A mass hand-over reaches a node as a wave of races and acquisitions a
// few hundred milliseconds long, and a count of the leases resuming
// alone falls to zero many times in it (every time the leases acquired so
// far have committed). So the gate counts the races under way too
// (Eligible to Attempted), and opens only once nothing it counts has
// happened for resumeQuiet (docs/benchmarks.md, "Checkpointers after the
// wave").
//
// A lease resumes at its first commit: one whose queue is empty counts as
// resuming until an item comes, resumeHoldMax at most
// (publisher.Options.ResumeWait). With a crashed peer's leases ended at
// once (node/peers.go), the orphaned topics' next items come after the
// acquisitions, and counting a lease out at its first empty read opened
// the gate in the middle of their commits (docs/benchmarks.md, "Fewer
// statements per topic in a mass hand-over").
type resumeGate struct {
	clock baton.Clock
	quiet time.Duration

	mu      sync.Mutex
	busy    int           // leases resuming and races under way
	settled time.Time     // when busy last fell to zero
	idle    chan struct{} // closed while busy is 0
	shut    time.Time     // when the gate last shut: busy rose from 0 after the quiet time
}

func newResumeGate(clock baton.Clock, quiet time.Duration) *resumeGate {
	g := &resumeGate{clock: clock, quiet: quiet, idle: make(chan struct{})}
	close(g.idle)
	return g
}

// begin counts a lease as resuming (or a race as under way); the function
// it returns counts it out, and may be called any number of times.
func (g *resumeGate) begin() (done func()) {
	g.mu.Lock()
	if g.busy == 0 {
		g.idle = make(chan struct{})
		if now := g.clock.Now(); now.Sub(g.settled) >= g.quiet {
			g.shut = now
		}
	}
	g.busy++
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.busy--; g.busy == 0 {
				g.settled = g.clock.Now()
				close(g.idle)
			}
		})
	}
}

// wait returns true once nothing has been counted for the gate's quiet
// time, or max has passed on the clock; false if ctx ended first.
func (g *resumeGate) wait(ctx context.Context, max time.Duration) bool {
	return g.waitFor(ctx, max)
}

// waitShut is wait with max counted from when the gate shut, not from the
// call: for a caller that waits again and again (the witness, before each
// round), whom a gate shut for long (topics created or moved for a
// minute) would otherwise hold max at every call.
func (g *resumeGate) waitShut(ctx context.Context, max time.Duration) bool {
	g.mu.Lock()
	left := max - g.clock.Now().Sub(g.shut)
	g.mu.Unlock()
	if left <= 0 {
		return true
	}
	return g.waitFor(ctx, left)
}

func (g *resumeGate) waitFor(ctx context.Context, max time.Duration) bool {
	idle, busy, left := g.state()
	if !busy && left <= 0 {
		return true
	}
	deadline := g.clock.NewTimer(max)
	defer deadline.Stop()
	for {
		// Busy: wait until nothing is counted. Not busy: until the quiet
		// time has passed since (then look again: a race may have begun).
		var wake <-chan struct{}
		var settle <-chan time.Time
		stop := func() bool { return false }
		if busy {
			wake = idle
		} else {
			q := g.clock.NewTimer(left)
			settle, stop = q.C(), q.Stop
		}
		select {
		case <-wake:
		case <-settle:
		case <-deadline.C():
			stop()
			return true
		case <-ctx.Done():
			stop()
			return false
		}
		stop()
		if idle, busy, left = g.state(); !busy && left <= 0 {
			return true
		}
	}
}

// state is the channel closed when nothing is counted, whether something
// is, and how much of the quiet time is left since it last was.
func (g *resumeGate) state() (idle chan struct{}, busy bool, left time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.idle, g.busy > 0, g.quiet - g.clock.Now().Sub(g.settled)
}
