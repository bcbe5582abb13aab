// Package pubrecord records what a publisher hands over, for the tests of
// the engines' publishing on append.
package pubrecord

import (
	"sync"

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
