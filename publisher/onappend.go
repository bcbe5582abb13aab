package publisher

import (
	"sync"

	"github.com/baton-pub/baton"
)

// onAppend is the publisher as a baton.Proposer: while Run waits, caught
// up, on a store that publishes on append (baton.AppendPublisher), an
// append through this process offers it the new items, and the commit it
// proposes is made in the append's own write. Run and the store's appends
// take turns: Run goes idle at its cursor (rest), a proposal is made only
// while it is idle and none is in flight, and Run waits for the one in
// flight to settle before it reads or commits again (busy). Each commit's
// bookkeeping (done: the ledger, OnCommit, OnPublished) runs before the
// turn passes, so it stays in commit order whoever made the commit.
type onAppend struct {
	lease baton.Lease
	batch int
	clock baton.Clock
	// checkpoint takes the checkpoint to store with the next commit.
	checkpoint func() *baton.Checkpoint
	// done is the bookkeeping of a successful commit.
	done func(c baton.Commit, cur baton.Cursor)

	mu       sync.Mutex
	idle     bool // Run waits, caught up at cur
	inflight bool
	settled  chan struct{} // closed when the commit in flight settles
	cur      baton.Cursor
	// back is a checkpoint whose commit was not made: the next commit
	// carries it.
	back *baton.Checkpoint
}

// Propose implements baton.Proposer.
func (f *onAppend) Propose(items []baton.Item) (baton.Commit, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.idle || f.inflight || len(items) == 0 || len(items) > f.batch || items[0].Seq != f.cur.Seq+1 {
		return baton.Commit{}, false
	}
	cp := f.takeLocked()
	f.inflight, f.settled = true, make(chan struct{})
	return baton.Commit{Topic: f.lease.Topic, Epoch: f.lease.Epoch, Holder: f.lease.Holder,
		PrevSeq: f.cur.Seq, Items: items, At: f.clock.Now(), Checkpoint: cp}, true
}

// Resting implements baton.RestingProposer: the cursor a proposal would
// follow, while Run waits caught up and no proposal is in flight.
func (f *onAppend) Resting() (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur.Seq, f.idle && !f.inflight
}

// HeldLease implements baton.RestingProposer.
func (f *onAppend) HeldLease() baton.Lease { return f.lease }

// Settled implements baton.Proposer. A commit that was not made leaves
// its items to Run, which the append's signal wakes: its own Commit then
// meets whatever refused this one (a fenced lease stops it).
func (f *onAppend) Settled(c baton.Commit, cur baton.Cursor, err error) {
	if err == nil {
		f.done(c, cur)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.cur = cur
	} else {
		f.idle = false
		if c.Checkpoint != nil {
			f.back = c.Checkpoint
		}
	}
	f.inflight = false
	close(f.settled)
}

// rest tells proposals that Run waits, caught up at cur.
func (f *onAppend) rest(cur baton.Cursor) {
	f.mu.Lock()
	f.idle, f.cur = true, cur
	f.mu.Unlock()
}

// busy takes the turn back for Run: no more proposals, and the one in
// flight settled. It returns the cursor, moved by the commits made on
// append meanwhile.
func (f *onAppend) busy() baton.Cursor {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idle = false
	for f.inflight {
		ch := f.settled
		f.mu.Unlock()
		<-ch
		f.mu.Lock()
	}
	return f.cur
}

// takeCheckpoint is the checkpoint for Run's next commit: one handed back
// by a proposal whose commit was not made, or the ledger's.
func (f *onAppend) takeCheckpoint() *baton.Checkpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.takeLocked()
}

// takeLocked is takeCheckpoint with mu held.
func (f *onAppend) takeLocked() *baton.Checkpoint {
	if cp := f.back; cp != nil {
		f.back = nil
		return cp
	}
	return f.checkpoint()
}
