package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/baton-pub/baton"
)

// Topic lifecycle (baton.Lifecycle; docs/design.md, "Topic lifecycle").
// A deleted topic has no topics row, so every read of its queue, lock and
// cursor answers as for an unknown topic, and Topics does not list it. What
// outlives it is its tombstone: the lock's epoch, so that no fencing epoch
// of the topic is handed out twice, and the cursor, the head of the kept
// ledger (zero if the ledger went too); and, kept with the ledger, the
// release records, which say who held each epoch of its leaves. ensureTopic brings the tombstone
// back into the topics row when an Append creates the topic again.

// lifecycleSchema is the lifecycle's tables. It is its own migration
// (migrateLifecycle), idempotent, so that it merges with other schema
// changes.
const lifecycleSchema = `
CREATE TABLE IF NOT EXISTS topic_tombstones (
	topic        TEXT PRIMARY KEY,
	epoch        INTEGER NOT NULL,
	cursor_seq   INTEGER NOT NULL,
	cursor_hash  BLOB,
	cursor_epoch INTEGER NOT NULL,
	cursor_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS topic_retention (
	topic TEXT PRIMARY KEY,
	items INTEGER NOT NULL, -- baton.Retention.Items
	age   INTEGER NOT NULL  -- baton.Retention.Age, nanoseconds
) WITHOUT ROWID;
`

// migrateLifecycle creates the lifecycle's tables if the file lacks them.
func (s *Store) migrateLifecycle(ctx context.Context) error {
	return s.ensureTables(ctx, []string{"topic_tombstones", "topic_retention"}, lifecycleSchema)
}

// reviveTopic moves the tombstone of a deleted topic, if any, into its
// new topics row: the epoch (recorded: no lease is live), and the kept
// ledger's head as cursor, the queue continuing after it. ensureTopic
// calls it on the rare path where it created the row.
func reviveTopic(ctx context.Context, tx *txn, topic string) error {
	res, err := tx.ExecContext(ctx, `UPDATE topics SET (epoch, recorded_epoch, last_seq, trimmed_below, cursor_seq, cursor_hash, cursor_epoch, cursor_at) =
		(SELECT epoch, epoch, cursor_seq, cursor_seq + 1, cursor_seq, cursor_hash, cursor_epoch, cursor_at FROM topic_tombstones WHERE topic = ?1)
		WHERE topic = ?1 AND EXISTS (SELECT 1 FROM topic_tombstones WHERE topic = ?1)`, topic)
	if err != nil {
		return fmt.Errorf("revive topic %s: %w", topic, wrapErr(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM topic_tombstones WHERE topic = ?`, topic); err != nil {
		return fmt.Errorf("revive topic %s: %w", topic, wrapErr(err))
	}
	return nil
}

// checkNotDeleted is Acquire's refusal of a deleted topic (ErrNotFound):
// an elector racing a delete must not bring the topic back.
func checkNotDeleted(ctx context.Context, tx *txn, topic string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM topic_tombstones WHERE topic = ?`, topic).Scan(&n); err != nil {
		return fmt.Errorf("acquire %s: %w", topic, wrapErr(err))
	}
	if n > 0 {
		return fmt.Errorf("acquire %s: topic deleted: %w", topic, baton.ErrNotFound)
	}
	return nil
}

// DeleteTopic implements baton.Lifecycle, in one transaction.
func (s *Store) DeleteTopic(ctx context.Context, topic string, opts baton.DeleteOptions) (baton.Deletion, error) {
	if err := baton.ValidateDelete(topic); err != nil {
		return baton.Deletion{}, fmt.Errorf("delete topic: %w", err)
	}
	d := baton.Deletion{Topic: topic, LedgerDeleted: opts.Ledger}
	err := s.write(ctx, topic, func(ctx context.Context, tx *txn) (baton.Signal, error) {
		r, ok, err := loadTopic(ctx, tx, topic)
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fmt.Errorf("delete topic %s: %w", topic, baton.ErrNotFound)
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE seq > ?) FROM items WHERE topic = ?`,
			r.cursorSeq, topic).Scan(&d.Items, &d.Unpublished); err != nil {
			return 0, fmt.Errorf("delete topic %s: %w", topic, wrapErr(err))
		}
		d.Epoch = r.epoch
		// A lease not yet recorded ends here, with its one record: the
		// delete's if it was live, its expiry's if it had lapsed.
		if now := nanos(s.now()); r.live(now) {
			if _, err := recordRelease(ctx, tx, topic, r, baton.ReasonDeleted, now); err != nil {
				return 0, err
			}
		} else if r.lapsed(now) {
			if _, err := recordRelease(ctx, tx, topic, r, baton.ReasonExpired, r.end(now)); err != nil {
				return 0, err
			}
		}
		drop := []string{`DELETE FROM items WHERE topic = ?`, `DELETE FROM topic_retention WHERE topic = ?`,
			`DELETE FROM topics WHERE topic = ?`, qSnapshotDrop}
		if opts.Ledger {
			drop = append(drop, `DELETE FROM leaves WHERE topic = ?`, `DELETE FROM checkpoints WHERE topic = ?`,
				`DELETE FROM cosignatures WHERE topic = ?`, `DELETE FROM releases WHERE topic = ?`,
				`DELETE FROM reanchors WHERE topic = ?`)
			r.cursorSeq, r.cursorHash, r.cursorEpoch, r.cursorAt = 0, nil, 0, 0
		}
		for _, q := range drop {
			if _, err := tx.ExecContext(ctx, q, topic); err != nil {
				return 0, fmt.Errorf("delete topic %s: %w", topic, wrapErr(err))
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO topic_tombstones (topic, epoch, cursor_seq, cursor_hash, cursor_epoch, cursor_at)
			VALUES (?, ?, ?, ?, ?, ?)`, topic, r.epoch, r.cursorSeq, r.cursorHash, r.cursorEpoch, r.cursorAt); err != nil {
			return 0, fmt.Errorf("delete topic %s: %w", topic, wrapErr(err))
		}
		d.LedgerSize = r.cursorSeq
		return baton.SignalTopic | baton.SignalLock | baton.SignalAppend | baton.SignalCommit, nil
	})
	if err != nil {
		return baton.Deletion{}, err
	}
	return d, nil
}

// SetRetention implements baton.Lifecycle.
func (s *Store) SetRetention(ctx context.Context, topic string, r baton.Retention) error {
	if err := baton.ValidateRetention(topic, r); err != nil {
		return fmt.Errorf("set retention: %w", err)
	}
	return s.write(ctx, topic, func(ctx context.Context, tx *txn) (baton.Signal, error) {
		if _, ok, err := loadTopic(ctx, tx, topic); err != nil {
			return 0, err
		} else if !ok {
			return 0, fmt.Errorf("set retention of %s: %w", topic, baton.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO topic_retention (topic, items, age) VALUES (?, ?, ?)`,
			topic, r.Items, int64(r.Age)); err != nil {
			return 0, fmt.Errorf("set retention of %s: %w", topic, wrapErr(err))
		}
		return baton.SignalLock, nil
	})
}

// Retention implements baton.Lifecycle.
func (s *Store) Retention(ctx context.Context, topic string) (baton.Retention, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.Retention{}, fmt.Errorf("retention: %w", err)
	}
	var exists int
	var items, age sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, `SELECT count(t.topic), max(r.items), max(r.age) FROM topics t
		LEFT JOIN topic_retention r ON r.topic = t.topic WHERE t.topic = ?`, topic).Scan(&exists, &items, &age)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return baton.Retention{}, fmt.Errorf("retention of %s: %w", topic, wrapErr(err))
	}
	if exists == 0 {
		return baton.Retention{}, fmt.Errorf("retention of %s: %w", topic, baton.ErrNotFound)
	}
	return baton.Retention{Items: items.Int64, Age: time.Duration(age.Int64)}, nil
}
