package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/baton-pub/baton"
)

// nanos encodes a leaf time exactly; "" stands for the zero time.
func nanos(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func fromNanos(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Commit implements baton.Publications: one script checks the lease (its
// epoch and holder, and the liveness of the node lease it is held under) and
// the cursor and that every item is in the queue with its hash, then appends the
// leaves, moves the snapshot (snapshot.go) and the cursor.
func (s *Store) Commit(ctx context.Context, c baton.Commit) (baton.Cursor, error) {
	if err := c.Validate(); err != nil {
		return baton.Cursor{}, fmt.Errorf("commit: %w", err)
	}
	keys, args, err := s.commitCall(c, "")
	if err != nil {
		return baton.Cursor{}, err
	}
	r, err := s.run(ctx, scriptCommit, true, keys, args...)
	if err != nil {
		return baton.Cursor{}, fmt.Errorf("commit %s epoch %d: %w", c.Topic, c.Epoch, err)
	}
	return s.committed(c, r)
}

// commitCall is the commit script's keys and arguments for c; fused is
// the body prefix of the append entry the commit is sent with, or "".
func (s *Store) commitCall(c baton.Commit, fused string) ([]string, []any, error) {
	// The leaves of a commit share its time, so they are sent once, as
	// the commit's items' hashes and At, and become one ledger segment.
	args := make([]any, 0, 9+len(c.Items))
	args = append(args, s.k.events(c.Topic), c.Holder, c.Epoch, c.PrevSeq, len(c.Items), nanos(c.At))
	for _, it := range c.Items {
		args = append(args, rawHash(it.Hash))
	}
	if cp := c.Checkpoint; cp != nil {
		js, err := checkpointJSONOf(*cp)
		if err != nil {
			return nil, nil, fmt.Errorf("commit %s: %w", c.Topic, err)
		}
		args = append(args, cp.Size, js)
	} else {
		args = append(args, "", "")
	}
	args = appendSnapshotArgs(args, c)
	args = append(args, s.carried(c), fused)
	keys := []string{s.k.lock(c.Topic), s.k.cursor(c.Topic), s.k.hashes(c.Topic), s.k.ledger(c.Topic), s.k.meta(c.Topic),
		s.k.checkpoints(c.Topic), s.k.cpsizes(c.Topic), s.k.holderLease(c.Topic, c.Holder), s.k.snapRows(c.Topic), s.k.snapIDs(c.Topic),
		s.k.queue(c.Topic)}
	return keys, args, nil
}

// committed reads the commit script's reply r for c.
func (s *Store) committed(c baton.Commit, r []any) (baton.Cursor, error) {
	switch replyStr(r, 0) {
	case "ok":
		// Its message, with the items, comes back later (recent.go).
		s.recent.unknown(c.Topic)
		s.sig.Notify(c.Topic, baton.SignalCommit)
		last := c.Items[len(c.Items)-1]
		return baton.Cursor{Topic: c.Topic, Seq: last.Seq, Hash: last.Hash, Epoch: c.Epoch,
			UpdatedAt: parseMicros(replyStr(r, 1))}, nil
	case "fenced":
		return baton.Cursor{}, fmt.Errorf("commit %s epoch %d by %s: %s (the lock is at epoch %s by %q): %w",
			c.Topic, c.Epoch, c.Holder, replyStr(r, 3), replyStr(r, 1), replyStr(r, 2), baton.ErrFenced)
	case "moved":
		return baton.Cursor{}, fmt.Errorf("commit %s: cursor at %s, not %d: %w", c.Topic, replyStr(r, 1), c.PrevSeq, baton.ErrCursorMoved)
	case "invalid":
		return baton.Cursor{}, baton.Invalidf("items", "%s", replyStr(r, 1))
	}
	return baton.Cursor{}, fmt.Errorf("commit %s: unexpected reply %v", c.Topic, r)
}

// Cursor implements baton.Publications.
func (s *Store) Cursor(ctx context.Context, topic string) (baton.Cursor, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.Cursor{}, err
	}
	if err := s.errClosed(); err != nil {
		return baton.Cursor{}, err
	}
	pipe, err := s.readPipe(ctx, topic)
	if err != nil {
		return baton.Cursor{}, fmt.Errorf("read cursor of %s: %w", topic, err)
	}
	vc := pipe.HMGet(ctx, s.k.cursor(topic), "seq", "hash", "epoch", "updated_us")
	dc := pipe.HExists(ctx, s.k.meta(topic), "deleted")
	if err := s.sendRead(ctx, topic, pipe); err != nil {
		return baton.Cursor{}, fmt.Errorf("read cursor of %s: %w", topic, s.mapErr(err))
	}
	if dc.Val() {
		// Deleted: it reads as unknown until an Append brings it back.
		return baton.Cursor{Topic: topic}, nil
	}
	cur, err := cursorOf(topic, vc.Val())
	if err != nil {
		return cur, fmt.Errorf("read cursor of %s: %w", topic, err)
	}
	return cur, nil
}

// cursorOf decodes a cursor's fields seq, hash, epoch and updated_us, as
// HMGET reads them (and acquire.lua replies with them).
func cursorOf(topic string, v []any) (baton.Cursor, error) {
	cur := baton.Cursor{Topic: topic, Seq: fieldUint(v[0]), Epoch: fieldUint(v[2]), UpdatedAt: fromMicros(fieldInt(v[3]))}
	if h := fieldStr(v[1]); h != "" {
		var err error
		if cur.Hash, err = hashOf(h); err != nil {
			return cur, err
		}
	}
	return cur, nil
}

// Published implements baton.Publications: the leaves and the items of the
// same range in one round trip (two XRANGEs and the trim mark, pipelined),
// joined by seq. Leaves exist only up to the cursor, so the result never
// goes beyond it.
func (s *Store) Published(ctx context.Context, topic string, after uint64, limit int) ([]baton.Published, error) {
	n, ok, err := s.rangeArgs(topic, after, limit)
	if !ok {
		return nil, err
	}
	pipe, err := s.readPipe(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("read published items of %s: %w", topic, err)
	}
	ledger := spans(ctx, pipe, s.k.ledger(topic), after, n)
	queue := spans(ctx, pipe, s.k.queue(topic), after, n)
	bc := pipe.HGet(ctx, s.k.meta(topic), "below")
	dc := pipe.HExists(ctx, s.k.meta(topic), "deleted")
	if err := s.sendRead(ctx, topic, pipe); err != nil {
		return nil, fmt.Errorf("read published items of %s: %w", topic, s.mapErr(err))
	}
	if dc.Val() {
		return nil, nil // deleted: its kept leaves have no items (delete.go)
	}
	if err := checkTrimmed(topic, after, below(bc)); err != nil {
		return nil, fmt.Errorf("read published items: %w", err)
	}
	leaves, err := decodeLeaves(topic, ledger(), after, int(n))
	if err != nil || len(leaves) == 0 {
		return nil, err
	}
	items, err := decodeItems(topic, queue(), after, len(leaves))
	if err != nil {
		return nil, err
	}
	out := make([]baton.Published, len(leaves))
	for i, l := range leaves {
		if i >= len(items) || items[i].Seq != l.Seq {
			// The item went between the reads: it was trimmed.
			return nil, fmt.Errorf("read published items of %s: item %d: %w", topic, l.Seq, baton.ErrTrimmed)
		}
		out[i] = baton.Published{Item: items[i], Epoch: l.Epoch, Publisher: l.Publisher, PublishedAt: l.At}
	}
	return out, nil
}

// Leaves implements baton.Publications.
func (s *Store) Leaves(ctx context.Context, topic string, after uint64, limit int) ([]baton.Leaf, error) {
	n, ok, err := s.rangeArgs(topic, after, limit)
	if !ok {
		return nil, err
	}
	pipe, err := s.readPipe(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("read leaves of %s: %w", topic, err)
	}
	ledger := spans(ctx, pipe, s.k.ledger(topic), after, n)
	if err := s.sendRead(ctx, topic, pipe); err != nil {
		return nil, fmt.Errorf("read leaves of %s: %w", topic, s.mapErr(err))
	}
	return decodeLeaves(topic, ledger(), after, int(n))
}
