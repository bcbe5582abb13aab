package sqlite

import (
	"context"
	"fmt"

	"github.com/baton-pub/baton"
)

// Publishing on append (baton.AppendPublisher).
//
// On one file every write is a transaction that takes the file's one write
// lock and an fsync. An item that reaches the node holding its topic's
// lease used to cost two of them (its append, then its commit) and, between
// them, a wake-up of the publisher and a read of the queue. A publisher
// that is caught up registers here; an append to its topic then offers it
// the new items inside the append's write, and the commit it proposes is
// made in the same write, in a savepoint of its own: a refused commit
// (fenced, cursor moved) is rolled back to the savepoint and the append
// stands, for the publisher's next Commit to find. The publisher learns the
// outcome (Settled) once the write has ended, so it never acts on a commit
// that was rolled back with its transaction.

// PublishOnAppend implements baton.AppendPublisher.
func (s *Store) PublishOnAppend(topic string, p baton.Proposer) (stop func()) {
	return s.fused.Register(topic, p)
}

// fusedCommit is the commit an append's write made for its proposer, or
// tried to: settle tells the proposer once the write has ended.
type fusedCommit struct {
	p   baton.Proposer // nil: none was proposed
	c   baton.Commit
	cur baton.Cursor
	err error // the commit's own refusal
}

// settle tells the proposer the outcome: writeErr is the outcome of the
// whole write (an error undid the commit with the append).
func (f *fusedCommit) settle(writeErr error) {
	if f.p == nil {
		return
	}
	err := f.err
	if writeErr != nil {
		err = writeErr
	}
	if err != nil {
		f.cur = baton.Cursor{}
	}
	f.p.Settled(f.c, f.cur, err)
	f.p = nil
}

// publishOnAppend offers the items an append wrote to their topic's
// proposer p (nil: none registered) and makes the commit it returns in tx,
// in a savepoint. It reports whether the commit was made (every item
// appended is then published).
func (s *Store) publishOnAppend(ctx context.Context, tx *txn, p baton.Proposer, items []baton.Item, f *fusedCommit) (bool, error) {
	if p == nil || len(items) == 0 {
		return false, nil
	}
	c, ok := p.Propose(items)
	if !ok {
		return false, nil
	}
	f.p, f.c = p, c
	if err := c.Validate(); err != nil {
		f.err = fmt.Errorf("commit: %w", err)
		return false, nil
	}
	// It publishes the items offered, in tx: checked here, not read back.
	if c.Topic != items[0].Topic || len(c.Items) > len(items) {
		f.err = baton.Invalidf("items", "not the items appended")
		return false, nil
	}
	for i, it := range c.Items {
		if it.Seq != items[i].Seq || it.Hash != items[i].Hash {
			f.err = baton.Invalidf("items", "seq %d is not the item appended", it.Seq)
			return false, nil
		}
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT fused`); err != nil {
		return false, wrapErr(err)
	}
	f.cur, f.err = s.commitIn(ctx, tx, c, false)
	if f.err != nil {
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO fused`); err != nil {
			return false, wrapErr(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `RELEASE fused`); err != nil {
		return false, wrapErr(err)
	}
	return f.err == nil, nil
}
