package memstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/baton-pub/baton"
)

// Commit publishes items under a live lease, if the cursor is at PrevSeq.
func (s *Store) Commit(ctx context.Context, c baton.Commit) (baton.Cursor, error) {
	d, err := s.begin(ctx, "commit", c.Validate())
	if err != nil {
		return baton.Cursor{}, err
	}
	defer d.mu.Unlock()
	now := d.now()
	t := d.holding(c.Topic, c.Holder, c.Epoch, now)
	if t == nil {
		return baton.Cursor{}, fmt.Errorf("commit %s epoch %d by %s: %w", c.Topic, c.Epoch, c.Holder, baton.ErrFenced)
	}
	if t.cursor.Seq != c.PrevSeq {
		return baton.Cursor{}, fmt.Errorf("commit %s after %d: cursor is at %d: %w", c.Topic, c.PrevSeq, t.cursor.Seq, baton.ErrCursorMoved)
	}
	for i, it := range c.Items {
		// Items after the cursor are never trimmed: index from trimmed.
		if it.Seq > t.last || t.items[it.Seq-t.trimmed-1].Hash != it.Hash {
			return baton.Cursor{}, fmt.Errorf("commit %s: %w", c.Topic,
				baton.Invalidf(fmt.Sprintf("items[%d]", i), "seq %d with hash %s is not in the queue", it.Seq, it.Hash))
		}
	}
	last := c.Items[len(c.Items)-1]
	t.cursor = baton.Cursor{Topic: c.Topic, Seq: last.Seq, Hash: last.Hash, Epoch: c.Epoch, UpdatedAt: now}
	t.leaves = append(t.leaves, c.Leaves()...)
	t.commitSnapshot(c)
	if cp := c.Checkpoint; cp != nil && (len(t.cps) == 0 || t.cps[len(t.cps)-1].Size < cp.Size) {
		k := copyCheckpoint(*cp)
		k.Cosignatures, k.At = nil, now
		t.cps = append(t.cps, k)
	}
	d.sig.Notify(c.Topic, baton.SignalCommit)
	return t.cursor, nil
}

// Cursor reads the topic's cursor.
func (s *Store) Cursor(ctx context.Context, name string) (baton.Cursor, error) {
	d, err := s.begin(ctx, "cursor", baton.ValidTopic(name))
	if err != nil {
		return baton.Cursor{}, err
	}
	defer d.mu.Unlock()
	if t := d.topics[name]; t != nil && !t.deleted {
		return t.cursor, nil
	}
	return baton.Cursor{}, nil
}

// Published returns up to limit published items with seq > after.
func (s *Store) Published(ctx context.Context, name string, after uint64, limit int) ([]baton.Published, error) {
	t, err := s.readTopic(ctx, "published", name, limit)
	if t == nil || t.deleted {
		return nil, s.unlockDeleted(t, err)
	}
	defer s.d.mu.Unlock()
	kept, err := t.kept(after)
	if err != nil {
		return nil, fmt.Errorf("published: %w", err)
	}
	var out []baton.Published
	for _, it := range kept {
		if it.Seq > t.cursor.Seq || len(out) == limit {
			break
		}
		l := t.leaves[it.Seq-1] // the ledger holds every seq from 1
		out = append(out, baton.Published{Item: copyItem(it), Epoch: l.Epoch, Publisher: l.Publisher, PublishedAt: l.At})
	}
	return out, nil
}

// Leaves returns up to limit ledger leaves with seq > after.
func (s *Store) Leaves(ctx context.Context, name string, after uint64, limit int) ([]baton.Leaf, error) {
	t, err := s.readTopic(ctx, "leaves", name, limit)
	if t == nil {
		return nil, err
	}
	defer s.d.mu.Unlock()
	i := int(min(after, uint64(len(t.leaves)))) // leaves[i] has seq i+1
	return slices.Clone(t.leaves[i:min(len(t.leaves), i+limit)]), nil
}
