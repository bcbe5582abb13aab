package node

import (
	"context"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// resumeHoldMax bounds how long a lease's checkpointer waits for the
// node's other leases to resume (resumeGate).
const resumeHoldMax = 2 * time.Second

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
type resumeGate struct {
	clock baton.Clock
	quiet time.Duration

	mu      sync.Mutex
	busy    int           // leases resuming and races under way
	settled time.Time     // when busy last fell to zero
	idle    chan struct{} // closed while busy is 0
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
	var deadline baton.Timer
	defer func() {
		if deadline != nil {
			deadline.Stop()
		}
	}()
	for {
		g.mu.Lock()
		idle, busy := g.idle, g.busy > 0
		left := g.quiet - g.clock.Now().Sub(g.settled)
		g.mu.Unlock()
		if !busy && left <= 0 {
			return true
		}
		if deadline == nil {
			deadline = g.clock.NewTimer(max)
		}
		// Busy: wait until nothing is counted. Not busy: until the quiet
		// time has passed since (then look again: a race may have begun).
		var wake <-chan struct{}
		var settle <-chan time.Time
		var quiet baton.Timer
		if busy {
			wake = idle
		} else {
			quiet = g.clock.NewTimer(left)
			settle = quiet.C()
		}
		select {
		case <-wake:
		case <-settle:
		case <-deadline.C():
			if quiet != nil {
				quiet.Stop()
			}
			return true
		case <-ctx.Done():
			if quiet != nil {
				quiet.Stop()
			}
			return false
		}
		if quiet != nil {
			quiet.Stop()
		}
	}
}
