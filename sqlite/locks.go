package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/baton-pub/baton"
)

// topicRow is the lock and cursor columns of a topic, with the holder's
// node lease row (node.epoch 0 if it has none).
type topicRow struct {
	lastSeq, trimmedBelow uint64
	epoch, recorded       uint64
	holder                string
	leaseNodeEpoch        uint64 // the node lease the topic lease was taken under
	acquiredAt, expiresAt int64
	cursorSeq             uint64
	cursorHash            []byte
	cursorEpoch           uint64
	cursorAt              int64
	node                  nodeRow
}

// topicQuery reads a topic's row and its holder's node lease in one
// statement, so that a fenced write checks both in its transaction.
const topicQuery = `SELECT t.last_seq, t.trimmed_below, t.epoch, t.recorded_epoch, t.holder, t.node_epoch, t.acquired_at, t.expires_at,
	t.cursor_seq, t.cursor_hash, t.cursor_epoch, t.cursor_at, coalesce(n.epoch, 0), coalesce(n.ended, 1), coalesce(n.acquired_at, 0), coalesce(n.expires_at, 0)
	FROM topics t LEFT JOIN nodes n ON n.node = t.holder WHERE t.topic = ?`

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func loadTopic(ctx context.Context, q querier, topic string) (topicRow, bool, error) {
	var r topicRow
	err := q.QueryRowContext(ctx, topicQuery, topic).Scan(
		&r.lastSeq, &r.trimmedBelow, &r.epoch, &r.recorded, &r.holder, &r.leaseNodeEpoch, &r.acquiredAt, &r.expiresAt,
		&r.cursorSeq, &r.cursorHash, &r.cursorEpoch, &r.cursorAt, &r.node.epoch, &r.node.ended, &r.node.acquiredAt, &r.node.expiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return topicRow{trimmedBelow: 1}, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("read topic %s: %w", topic, wrapErr(err))
	}
	r.node.node = r.holder
	return r, true, nil
}

// unrecorded reports whether the row's lease has no release record yet.
func (r topicRow) unrecorded() bool { return r.epoch > r.recorded }

// underNode reports whether the row's unrecorded lease is under its
// holder's current node lease, not ended: always so (ending a node lease
// records its topics), but for a lease a version 1 file left (migrate).
func (r topicRow) underNode() bool {
	return r.unrecorded() && r.node.epoch == r.leaseNodeEpoch && !r.node.ended
}

// live reports whether the row's lease is live at now: unrecorded and its
// node lease live.
func (r topicRow) live(now int64) bool { return r.underNode() && r.node.live(now) }

// lapsed reports whether the lease ended by expiry without a record yet.
func (r topicRow) lapsed(now int64) bool { return r.unrecorded() && !r.live(now) }

// end is when the row's lease ends or ended: its node lease's expiry while
// under it, when it was recorded once recorded. A lease a version 1 file
// left ended at the migration, now at the latest.
func (r topicRow) end(now int64) int64 {
	switch {
	case r.underNode():
		return r.node.expiresAt
	case r.unrecorded():
		return min(r.expiresAt, now)
	}
	return r.expiresAt
}

func (r topicRow) lease(topic string, now int64) baton.Lease {
	l := baton.Lease{Topic: topic, Holder: r.holder, Epoch: r.epoch, NodeEpoch: r.leaseNodeEpoch,
		AcquiredAt: fromNanos(r.acquiredAt), ExpiresAt: fromNanos(r.end(now))}
	if r.live(now) {
		l.Remaining = time.Duration(r.end(now) - now)
	}
	return l
}

// write runs fn in an immediate transaction, shared with the writes that
// wait at the same time (leasebatch.go: each in its savepoint, its
// statements on the batch's ctx), and raises sig for topic after it
// commits.
func (s *Store) write(ctx context.Context, topic string, fn func(ctx context.Context, tx *txn) (baton.Signal, error)) error {
	return s.batch.do(ctx, topicWrite(topic, fn))
}

func topicWrite(topic string, fn func(ctx context.Context, tx *txn) (baton.Signal, error)) func(ctx context.Context, tx *txn) ([]change, error) {
	return func(ctx context.Context, tx *txn) ([]change, error) {
		sig, err := fn(ctx, tx)
		return []change{{topic: topic, sig: sig}}, err
	}
}

// ensureTopic creates the topic's row, from its tombstone if it was
// deleted (topics_delete.go); it reports whether it was new.
func ensureTopic(ctx context.Context, tx *txn, topic string) (bool, error) {
	res, err := tx.ExecContext(ctx, qEnsureTopic, topic)
	if err != nil {
		return false, wrapErr(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	return true, reviveTopic(ctx, tx, topic)
}

// recordRelease writes the release record of the row's epoch, ended at at.
func recordRelease(ctx context.Context, tx *txn, topic string, r topicRow, reason baton.ReleaseReason, at int64) (baton.ReleaseRecord, error) {
	rec := baton.ReleaseRecord{Topic: topic, Holder: r.holder, Epoch: r.epoch, Reason: reason,
		At: fromNanos(at), LastSeq: r.cursorSeq, LastHash: hashFrom(r.cursorHash)}
	if _, err := tx.ExecContext(ctx, `INSERT INTO releases (topic, epoch, holder, reason, at, last_seq, last_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, topic, r.epoch, r.holder, string(reason), at, r.cursorSeq, r.cursorHash); err != nil {
		return rec, fmt.Errorf("record release: %w", wrapErr(err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE topics SET recorded_epoch = epoch, expires_at = ? WHERE topic = ?`, at, topic); err != nil {
		return rec, fmt.Errorf("record release: %w", wrapErr(err))
	}
	return rec, nil
}

// Acquire implements baton.Locks.
func (s *Store) Acquire(ctx context.Context, topic string, nl baton.NodeLease) (baton.Lease, error) {
	if err := baton.ValidateLease(topic, nl); err != nil {
		return baton.Lease{}, err
	}
	var lease baton.Lease
	err := s.writeLeaseChanges(ctx, func(ctx context.Context, tx *txn) ([]change, error) {
		sig, err := s.acquire(ctx, tx, topic, nl, &lease)
		return []change{{topic: topic, sig: sig, holder: lease.Holder, epoch: lease.Epoch}}, err
	})
	return lease, err
}

// qSuccessor names the new holder in the record of the epoch it follows.
const qSuccessor = `UPDATE releases SET successor = ?, successor_epoch = ?, successor_at = ? WHERE topic = ? AND epoch = ?`

// acquire is Acquire's transaction; it sets *lease.
func (s *Store) acquire(ctx context.Context, tx *txn, topic string, nl baton.NodeLease, lease *baton.Lease) (baton.Signal, error) {
	now := nanos(s.now())
	n, err := loadNode(ctx, tx, nl.Node)
	if err != nil {
		return 0, err
	}
	if n.epoch != nl.Epoch || !n.live(now) {
		return 0, fmt.Errorf("acquire %s: node lease %s epoch %d is not live: %w", topic, nl.Node, nl.Epoch, baton.ErrLeaseLost)
	}
	sig := baton.SignalLock
	// A topic's row and its tombstone never exist together
	// (topics_delete.go): a topic with a row is not deleted, and
	// costs no more statements (a crash hands thousands over at once).
	r, found, err := loadTopic(ctx, tx, topic)
	if err != nil {
		return 0, err
	}
	if !found {
		if err := checkNotDeleted(ctx, tx, topic); err != nil {
			return 0, err
		}
		created, err := ensureTopic(ctx, tx, topic)
		if err != nil {
			return 0, err
		}
		if created {
			sig |= baton.SignalTopic
		}
		if r, _, err = loadTopic(ctx, tx, topic); err != nil {
			return 0, err
		}
	}
	if r.live(now) {
		return 0, fmt.Errorf("acquire %s: held by %s at epoch %d: %w", topic, r.holder, r.epoch, baton.ErrLeaseHeld)
	}
	if r.lapsed(now) {
		if _, err := recordRelease(ctx, tx, topic, r, baton.ReasonExpired, r.end(now)); err != nil {
			return 0, err
		}
	}
	prev := r.epoch
	r.epoch++
	r.holder, r.leaseNodeEpoch, r.acquiredAt, r.expiresAt, r.node = nl.Node, nl.Epoch, now, n.expiresAt, n
	if _, err := tx.ExecContext(ctx, `UPDATE topics SET epoch = ?, recorded_epoch = ?, holder = ?, node_epoch = ?, acquired_at = ?, expires_at = ?
		WHERE topic = ?`, r.epoch, prev, nl.Node, nl.Epoch, now, n.expiresAt, topic); err != nil {
		return 0, fmt.Errorf("acquire %s: %w", topic, wrapErr(err))
	}
	if _, err := tx.ExecContext(ctx, qSuccessor, nl.Node, r.epoch, now, topic, prev); err != nil {
		return 0, fmt.Errorf("acquire %s: %w", topic, wrapErr(err))
	}
	r.recorded = prev
	*lease = r.lease(topic, now)
	lease.Cursor = &baton.Cursor{Topic: topic, Seq: r.cursorSeq, Hash: hashFrom(r.cursorHash), Epoch: r.cursorEpoch, UpdatedAt: fromNanos(r.cursorAt)}
	return sig, nil
}

// heldOrLapsed returns the row of lease while it is live. If lease's own
// epoch has lapsed without a record, it records the lapse now (exactly one
// record per epoch, and the standbys learn of it with this commit) and
// reports lapsed: the caller commits that and fails as fenced.
func (s *Store) heldOrLapsed(ctx context.Context, tx *txn, lease baton.Lease, now int64, op string) (topicRow, bool, error) {
	r, err := s.checkHeld(ctx, tx, lease, now)
	if err == nil {
		return r, false, nil
	}
	if r.epoch == lease.Epoch && r.lapsed(now) {
		if _, err := recordRelease(ctx, tx, lease.Topic, r, baton.ReasonExpired, r.end(now)); err != nil {
			return r, false, err
		}
		return r, true, nil
	}
	return r, false, fmt.Errorf("%s: %w", op, err)
}

// checkHeld returns the row if lease is the live lease of its topic: its
// epoch and holder, unrecorded, and its node lease live, all read in tx.
func (s *Store) checkHeld(ctx context.Context, tx *txn, lease baton.Lease, now int64) (topicRow, error) {
	r, ok, err := loadTopic(ctx, tx, lease.Topic)
	if err != nil {
		return r, err
	}
	if !ok || r.epoch != lease.Epoch || r.holder != lease.Holder {
		return r, fmt.Errorf("%s epoch %d by %s (current epoch %d): %w", lease.Topic, lease.Epoch, lease.Holder, r.epoch, baton.ErrFenced)
	}
	if r.live(now) {
		return r, nil
	}
	return r, fmt.Errorf("%s epoch %d by %s has ended: %w", lease.Topic, lease.Epoch, lease.Holder, baton.ErrFenced)
}

// Release implements baton.Locks.
func (s *Store) Release(ctx context.Context, lease baton.Lease, reason baton.ReleaseReason) error {
	if err := baton.ValidateRelease(lease, reason); err != nil {
		return err
	}
	var lapsed bool
	err := s.writeLease(ctx, lease.Topic, func(ctx context.Context, tx *txn) (baton.Signal, error) {
		now := nanos(s.now())
		var r topicRow
		var err error
		if r, lapsed, err = s.heldOrLapsed(ctx, tx, lease, now, "release"); err != nil || lapsed {
			return baton.SignalLock, err
		}
		if _, err := recordRelease(ctx, tx, lease.Topic, r, reason, now); err != nil {
			return 0, err
		}
		return baton.SignalLock, nil
	})
	if err == nil && lapsed {
		err = fmt.Errorf("release %s epoch %d: expired: %w", lease.Topic, lease.Epoch, baton.ErrFenced)
	}
	return err
}

// Expire implements baton.Locks.
func (s *Store) Expire(ctx context.Context, topic string) (baton.ReleaseRecord, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.ReleaseRecord{}, err
	}
	var rec baton.ReleaseRecord
	err := s.writeLease(ctx, topic, func(ctx context.Context, tx *txn) (baton.Signal, error) {
		r, ok, err := loadTopic(ctx, tx, topic)
		if err != nil {
			return 0, err
		}
		now := nanos(s.now())
		if ok && r.live(now) {
			return 0, fmt.Errorf("expire %s: %w", topic, baton.ErrLeaseHeld)
		}
		if !ok || !r.lapsed(now) {
			return 0, fmt.Errorf("expire %s: no lapsed lease: %w", topic, baton.ErrNotFound)
		}
		rec, err = recordRelease(ctx, tx, topic, r, baton.ReasonExpired, r.end(now))
		if err != nil {
			return 0, err
		}
		return baton.SignalLock, nil
	})
	return rec, err
}

// Lock implements baton.Locks.
func (s *Store) Lock(ctx context.Context, topic string) (baton.LockState, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.LockState{}, err
	}
	r, ok, err := loadTopic(ctx, s.rdb, topic)
	if err != nil {
		return baton.LockState{}, err
	}
	st := baton.LockState{Topic: topic}
	if !ok || r.epoch == 0 {
		return st, nil
	}
	now := nanos(s.now())
	st.Held = r.live(now)
	st.Lease = r.lease(topic, now)
	return st, nil
}

// Handovers implements baton.Locks.
func (s *Store) Handovers(ctx context.Context, topic string, limit int) ([]baton.ReleaseRecord, error) {
	limit, err := checkRead(topic, limit)
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT epoch, holder, reason, at, last_seq, last_hash, successor, successor_epoch, successor_at
		FROM releases WHERE topic = ? ORDER BY epoch DESC LIMIT ?`, topic, limit)
	if err != nil {
		return nil, fmt.Errorf("list handovers: %w", wrapErr(err))
	}
	defer rows.Close()
	var out []baton.ReleaseRecord
	for rows.Next() {
		rec := baton.ReleaseRecord{Topic: topic}
		var reason string
		var at, sat int64
		var lh []byte
		if err := rows.Scan(&rec.Epoch, &rec.Holder, &reason, &at, &rec.LastSeq, &lh, &rec.Successor, &rec.SuccessorEpoch, &sat); err != nil {
			return nil, fmt.Errorf("list handovers: %w", err)
		}
		rec.Reason, rec.At, rec.SuccessorAt, rec.LastHash = baton.ReleaseReason(reason), fromNanos(at), fromNanos(sat), hashFrom(lh)
		out = append(out, rec)
	}
	return out, rows.Err()
}
