// Package pubrecord records what a publisher hands over, and what an
// engine offers and tells a proposer, for the tests of the engines'
// publishing on append.
package pubrecord

import (
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// Recorder records a publisher's items (OnPublished) and, as its
// publisher.Ledger, the leaves of its commits.
type Recorder struct {
	mu     sync.Mutex
	got    []baton.Published
	leaves []baton.Leaf
}

// OnPublished is the publisher's publisher.Options.OnPublished.
func (r *Recorder) OnPublished(ps []baton.Published) {
	r.mu.Lock()
	r.got = append(r.got, ps...)
	r.mu.Unlock()
}

// Checkpoint implements publisher.Ledger: none.
func (r *Recorder) Checkpoint() *baton.Checkpoint { return nil }

// Committed implements publisher.Ledger.
func (r *Recorder) Committed(ls []baton.Leaf, _ *baton.Checkpoint) {
	r.mu.Lock()
	r.leaves = append(r.leaves, ls...)
	r.mu.Unlock()
}

// Published reports whether the items up to seq have been handed over.
func (r *Recorder) Published(seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got) > 0 && r.got[len(r.got)-1].Seq >= seq
}

// Got returns the items and leaves handed over so far.
func (r *Recorder) Got() ([]baton.Published, []baton.Leaf) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got, r.leaves
}

// Proposer is a baton.RestingProposer that proposes every offer under
// Lease (with the epoch moved by Skew, to be fenced) and records what it
// was offered and told. It rests after its last settled cursor.
type Proposer struct {
	Lease baton.Lease
	Skew  uint64

	mu      sync.Mutex
	after   uint64
	offered [][]baton.Item
	settled []Settlement
}

// Settlement is one outcome a Proposer was told.
type Settlement struct {
	C   baton.Commit
	Cur baton.Cursor
	Err error
}

// Resting implements baton.RestingProposer.
func (p *Proposer) Resting() (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.after, true
}

// HeldLease implements baton.RestingProposer.
func (p *Proposer) HeldLease() baton.Lease { return p.Lease }

// Propose implements baton.Proposer.
func (p *Proposer) Propose(items []baton.Item) (baton.Commit, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.offered = append(p.offered, items)
	return baton.Commit{Topic: p.Lease.Topic, Epoch: p.Lease.Epoch + p.Skew, Holder: p.Lease.Holder,
		PrevSeq: items[0].Seq - 1, Items: items, At: time.Now()}, true
}

// Settled implements baton.Proposer.
func (p *Proposer) Settled(c baton.Commit, cur baton.Cursor, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.settled = append(p.settled, Settlement{c, cur, err})
	if err == nil {
		p.after = cur.Seq
	}
}

// State returns what the Proposer was offered and told so far.
func (p *Proposer) State() ([][]baton.Item, []Settlement) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offered, p.settled
}
