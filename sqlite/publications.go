package sqlite

import (
	"bytes"
	"context"
	"fmt"

	"github.com/baton-pub/baton"
)

// Commit implements baton.Publications: one transaction checks the lease
// and the cursor, appends the leaves, moves the snapshot (snapshot.go) and
// the cursor.
func (s *Store) Commit(ctx context.Context, c baton.Commit) (baton.Cursor, error) {
	if err := c.Validate(); err != nil {
		return baton.Cursor{}, fmt.Errorf("commit: %w", err)
	}
	var cur baton.Cursor
	err := s.write(ctx, c.Topic, func(ctx context.Context, tx *txn) (baton.Signal, error) {
		var err error
		cur, err = s.commitIn(ctx, tx, c, true)
		if err != nil {
			return 0, err
		}
		return baton.SignalCommit, nil
	})
	return cur, err
}

// commitIn makes a validated commit in tx: Commit's write, and an append's
// when its publisher proposed one (fused.go). check is whether to check
// the commit's items against the queue: an append's own items, written in
// tx, need no check.
func (s *Store) commitIn(ctx context.Context, tx *txn, c baton.Commit, check bool) (baton.Cursor, error) {
	last := c.Items[len(c.Items)-1]
	now := s.now()
	lease := baton.Lease{Topic: c.Topic, Holder: c.Holder, Epoch: c.Epoch}
	r, err := s.checkHeld(ctx, tx, lease, nanos(now))
	if err != nil {
		return baton.Cursor{}, fmt.Errorf("commit: %w", err)
	}
	if r.cursorSeq != c.PrevSeq {
		return baton.Cursor{}, fmt.Errorf("commit %s: cursor at %d, not %d: %w", c.Topic, r.cursorSeq, c.PrevSeq, baton.ErrCursorMoved)
	}
	if last.Seq > r.lastSeq {
		return baton.Cursor{}, baton.Invalidf("items", "seq %d was never appended (last is %d)", last.Seq, r.lastSeq)
	}
	if check {
		if err := checkHashes(ctx, tx, c); err != nil {
			return baton.Cursor{}, err
		}
	}
	ins, err := tx.PrepareContext(ctx, qInsertLeaf)
	if err != nil {
		return baton.Cursor{}, fmt.Errorf("commit: %w", wrapErr(err))
	}
	defer ins.Close()
	for _, l := range c.Leaves() {
		if _, err := ins.ExecContext(ctx, c.Topic, l.Seq, l.ItemHash[:], l.Epoch, l.Publisher, nanos(l.At)); err != nil {
			return baton.Cursor{}, fmt.Errorf("commit: append leaf %d: %w", l.Seq, wrapErr(err))
		}
	}
	if err := commitSnapshot(ctx, tx, c); err != nil {
		return baton.Cursor{}, err
	}
	if _, err := tx.ExecContext(ctx, qSetCursor,
		last.Seq, last.Hash[:], c.Epoch, nanos(now), c.Topic); err != nil {
		return baton.Cursor{}, fmt.Errorf("commit: %w", wrapErr(err))
	}
	if cp := c.Checkpoint; cp != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (topic, size, root, epoch, node, at, note)
			SELECT ?, ?, ?, ?, ?, ?, ? WHERE ? > (SELECT coalesce(max(size), 0) FROM checkpoints WHERE topic = ?)`,
			c.Topic, cp.Size, cp.Root[:], cp.Epoch, cp.Node, nanos(now), cp.Note, cp.Size, c.Topic); err != nil {
			return baton.Cursor{}, fmt.Errorf("commit: store checkpoint: %w", wrapErr(err))
		}
	}
	cur := baton.Cursor{Topic: c.Topic, Seq: last.Seq, Hash: last.Hash, Epoch: c.Epoch, UpdatedAt: fromNanos(nanos(now))}
	return cur, nil
}

// Cursor implements baton.Publications.
func (s *Store) Cursor(ctx context.Context, topic string) (baton.Cursor, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.Cursor{}, err
	}
	r, _, err := loadTopic(ctx, s.rdb, topic)
	if err != nil {
		return baton.Cursor{}, err
	}
	return baton.Cursor{Topic: topic, Seq: r.cursorSeq, Hash: hashFrom(r.cursorHash), Epoch: r.cursorEpoch, UpdatedAt: fromNanos(r.cursorAt)}, nil
}

// Published implements baton.Publications. The read runs in one
// transaction so the cursor and the items are one snapshot.
func (s *Store) Published(ctx context.Context, topic string, after uint64, limit int) ([]baton.Published, error) {
	limit, err := checkRead(topic, limit)
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, qPublished, topic, seqArg(after), topic, limit)
	if err != nil {
		return nil, fmt.Errorf("read published: %w", wrapErr(err))
	}
	defer rows.Close()
	var out []baton.Published
	for rows.Next() {
		p := baton.Published{Item: baton.Item{Topic: topic}}
		var hb, v []byte
		var at, pat int64
		if err := rows.Scan(&p.Seq, &p.ID, &v, &p.MsgID, &hb, &at, &p.Deleted, &p.Epoch, &p.Publisher, &pat); err != nil {
			return nil, fmt.Errorf("read published: %w", err)
		}
		p.Value, p.Hash, p.IngestedAt, p.PublishedAt = v, hashFrom(hb), fromNanos(at), fromNanos(pat)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read published: %w", wrapErr(err))
	}
	if len(out) == 0 || out[0].Seq != after+1 {
		if err := s.checkTrimmed(ctx, topic, after); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Leaves implements baton.Publications.
func (s *Store) Leaves(ctx context.Context, topic string, after uint64, limit int) ([]baton.Leaf, error) {
	limit, err := checkRead(topic, limit)
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, qLeaves, topic, seqArg(after), limit)
	if err != nil {
		return nil, fmt.Errorf("read leaves: %w", wrapErr(err))
	}
	defer rows.Close()
	var out []baton.Leaf
	for rows.Next() {
		l := baton.Leaf{Topic: topic}
		var hb []byte
		var at int64
		if err := rows.Scan(&l.Seq, &hb, &l.Epoch, &l.Publisher, &at); err != nil {
			return nil, fmt.Errorf("read leaves: %w", err)
		}
		l.ItemHash, l.At = hashFrom(hb), fromNanos(at)
		out = append(out, l)
	}
	return out, rows.Err()
}

// checkHashes makes sure a commit publishes what is in the queue.
func checkHashes(ctx context.Context, tx *txn, c baton.Commit) error {
	rows, err := tx.QueryContext(ctx, qQueueHashes,
		c.Topic, c.PrevSeq, c.Items[len(c.Items)-1].Seq)
	if err != nil {
		return fmt.Errorf("commit %s: read queue: %w", c.Topic, wrapErr(err))
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var seq uint64
		var h []byte
		if err := rows.Scan(&seq, &h); err != nil {
			return fmt.Errorf("commit %s: read queue: %w", c.Topic, err)
		}
		if i >= len(c.Items) || c.Items[i].Seq != seq || !bytes.Equal(h, c.Items[i].Hash[:]) {
			return baton.Invalidf("items", "seq %d does not match the queue", seq)
		}
		i++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("commit %s: read queue: %w", c.Topic, wrapErr(err))
	}
	if i != len(c.Items) {
		return baton.Invalidf("items", "%d of %d items are not in the queue", len(c.Items)-i, len(c.Items))
	}
	return nil
}
