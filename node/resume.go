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
type resumeGate struct {
	mu       sync.Mutex
	resuming int
	idle     chan struct{} // closed while resuming is 0
}

func newResumeGate() *resumeGate {
	g := &resumeGate{idle: make(chan struct{})}
	close(g.idle)
	return g
}

// begin counts a lease as resuming; the function it returns counts it
// out, and may be called any number of times.
func (g *resumeGate) begin() (done func()) {
	g.mu.Lock()
	if g.resuming == 0 {
		g.idle = make(chan struct{})
	}
	g.resuming++
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			if g.resuming--; g.resuming == 0 {
				close(g.idle)
			}
		})
	}
}

// wait returns true once no lease is resuming, or max has passed on
// clock; false if ctx ended first.
func (g *resumeGate) wait(ctx context.Context, clock baton.Clock, max time.Duration) bool {
	g.mu.Lock()
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
		return true
	default:
	}
	t := clock.NewTimer(max)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C():
		return true
	case <-ctx.Done():
		return false
	}
}
