package sqlite

import (
	"context"
	"fmt"

	"github.com/baton-pub/baton"
)

// AddCheckpoint implements baton.Checkpoints: one transaction checks the
// lease, the cursor and the latest size, then inserts.
func (s *Store) AddCheckpoint(ctx context.Context, cp baton.Checkpoint) error {
	if err := baton.ValidateCheckpoint(cp); err != nil {
		return err
	}
	return s.write(ctx, cp.Topic, func(ctx context.Context, tx *txn) (baton.Signal, error) {
		now := nanos(s.now())
		r, err := s.checkHeld(ctx, tx, baton.Lease{Topic: cp.Topic, Holder: cp.Node, Epoch: cp.Epoch}, now)
		if err != nil {
			return 0, fmt.Errorf("add checkpoint: %w", err)
		}
		if cp.Size > r.cursorSeq {
			return 0, baton.Invalidf("size", "%d is beyond the cursor %d", cp.Size, r.cursorSeq)
		}
		var latest uint64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(size), 0) FROM checkpoints WHERE topic = ?`, cp.Topic).Scan(&latest); err != nil {
			return 0, fmt.Errorf("add checkpoint: %w", wrapErr(err))
		}
		if latest >= cp.Size {
			return 0, baton.Invalidf("size", "%d is not above the latest checkpoint's %d", cp.Size, latest)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (topic, size, root, epoch, node, at, note) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			cp.Topic, cp.Size, cp.Root[:], cp.Epoch, cp.Node, now, cp.Note); err != nil {
			return 0, fmt.Errorf("add checkpoint: %w", wrapErr(err))
		}
		return baton.SignalCheckpoint, nil
	})
}

// Checkpoint implements baton.Checkpoints.
func (s *Store) Checkpoint(ctx context.Context, topic string) (baton.Checkpoint, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.Checkpoint{}, err
	}
	var size uint64
	err := s.rdb.QueryRowContext(ctx, qCheckpointTop, topic).Scan(&size)
	if err != nil {
		return baton.Checkpoint{}, fmt.Errorf("read checkpoint of %s: %w", topic, wrapErr(err))
	}
	if size == 0 {
		return baton.Checkpoint{}, fmt.Errorf("checkpoint of %s: %w", topic, baton.ErrNotFound)
	}
	cps, err := s.Checkpoints(ctx, topic, size-1, 1)
	if err != nil {
		return baton.Checkpoint{}, err
	}
	if len(cps) == 0 {
		return baton.Checkpoint{}, fmt.Errorf("checkpoint of %s: %w", topic, baton.ErrNotFound)
	}
	return cps[0], nil
}

// The checkpoint reads, prepared on every reader (stmts.go): a node that
// takes over thousands of topics reads each one's latest checkpoint when
// its checkpointer starts, and parsing them anew each time was a fifth of
// its CPU in a mass hand-over (docs/benchmarks.md, "A crashed process seen
// at once").
const (
	qCheckpointTop    = `SELECT coalesce(max(size), 0) FROM checkpoints WHERE topic = ?`
	qCheckpointsAfter = `SELECT size, root, epoch, node, at, note FROM checkpoints WHERE topic = ? AND size > ? ORDER BY size LIMIT ?`
	qCosignatures     = `SELECT size, node, signature, at FROM cosignatures WHERE topic = ? AND size >= ? AND size <= ? ORDER BY size, node`
)

// Checkpoints implements baton.Checkpoints.
func (s *Store) Checkpoints(ctx context.Context, topic string, after uint64, limit int) ([]baton.Checkpoint, error) {
	limit, err := checkRead(topic, limit)
	if err != nil {
		return nil, err
	}
	tx, err := s.rdb.BeginTx(ctx, nil) // one snapshot for both reads
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", wrapErr(err))
	}
	defer tx.Rollback()
	rows, err := tx.StmtContext(ctx, s.rdb.hot.lookup(qCheckpointsAfter)).QueryContext(ctx, topic, seqArg(after), limit)
	if err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", wrapErr(err))
	}
	var out []baton.Checkpoint
	for rows.Next() {
		cp := baton.Checkpoint{Topic: topic}
		var root []byte
		var at int64
		if err := rows.Scan(&cp.Size, &root, &cp.Epoch, &cp.Node, &at, &cp.Note); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		cp.Root, cp.At = hashFrom(root), fromNanos(at)
		out = append(out, cp)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", wrapErr(err))
	}
	if len(out) == 0 {
		return nil, nil
	}
	idx := make(map[uint64]int, len(out))
	for i, cp := range out {
		idx[cp.Size] = i
	}
	crows, err := tx.StmtContext(ctx, s.rdb.hot.lookup(qCosignatures)).QueryContext(ctx, topic, out[0].Size, out[len(out)-1].Size)
	if err != nil {
		return nil, fmt.Errorf("read cosignatures: %w", wrapErr(err))
	}
	defer crows.Close()
	for crows.Next() {
		var size uint64
		var cs baton.Cosignature
		var at int64
		if err := crows.Scan(&size, &cs.Node, &cs.Signature, &at); err != nil {
			return nil, fmt.Errorf("read cosignatures: %w", err)
		}
		cs.At = fromNanos(at)
		if i, ok := idx[size]; ok {
			out[i].Cosignatures = append(out[i].Cosignatures, cs)
		}
	}
	return out, crows.Err()
}

// Cosign implements baton.Checkpoints.
func (s *Store) Cosign(ctx context.Context, topic string, size uint64, cs baton.Cosignature) error {
	if err := baton.ValidateCosign(topic, cs); err != nil {
		return err
	}
	return s.write(ctx, topic, func(ctx context.Context, tx *txn) (baton.Signal, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM checkpoints WHERE topic = ? AND size = ?`, topic, seqArg(size)).Scan(&n); err != nil {
			return 0, fmt.Errorf("cosign: %w", wrapErr(err))
		}
		if n == 0 {
			return 0, fmt.Errorf("cosign %s checkpoint %d: %w", topic, size, baton.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO cosignatures (topic, size, node, signature, at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (topic, size, node) DO UPDATE SET signature = excluded.signature, at = excluded.at`,
			topic, size, cs.Node, cs.Signature, nanos(s.now())); err != nil {
			return 0, fmt.Errorf("cosign: %w", wrapErr(err))
		}
		return 0, nil
	})
}

// NodeKeys implements baton.Members.
func (s *Store) NodeKeys(ctx context.Context) ([]baton.NodeKey, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT node, public_key FROM node_keys ORDER BY node, public_key`)
	if err != nil {
		return nil, fmt.Errorf("list node keys: %w", wrapErr(err))
	}
	defer rows.Close()
	var out []baton.NodeKey
	for rows.Next() {
		var k baton.NodeKey
		if err := rows.Scan(&k.Node, &k.PublicKey); err != nil {
			return nil, fmt.Errorf("list node keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}
