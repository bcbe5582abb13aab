package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/baton-pub/baton"
)

// The snapshot (baton.Snapshots): one row per (topic, id), the id's latest
// published item, written by Commit in its transaction and so fenced with
// it; Trim does not touch it, DeleteTopic drops it (qSnapshotDrop).
// Tombstones are items with deleted = 1.
//
// snapshotSchema is created by migrateSnapshot, idempotent, apart from the
// main schema so that it merges with other schema changes.
const snapshotSchema = `
CREATE TABLE IF NOT EXISTS snapshot (
	topic       TEXT    NOT NULL,
	id          TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	value       BLOB    NOT NULL,
	msg_id      TEXT    NOT NULL,
	hash        BLOB    NOT NULL,
	ingested_at INTEGER NOT NULL,
	epoch       INTEGER NOT NULL, -- the commit's: the row is a baton.Published
	publisher   TEXT    NOT NULL,
	at          INTEGER NOT NULL,
	PRIMARY KEY (topic, id)
) WITHOUT ROWID;
`

// The commit's two statements over its items (seq in (?2, ?3]): each id's
// latest item among them (SQLite takes the bare columns of a max()
// aggregate from the row holding the max) replaces the id's row, or
// removes it if it is a tombstone. Set-based: one pass over the commit's
// items whatever their number.
const (
	qSnapshotUpsert = `INSERT INTO snapshot (topic, id, seq, value, msg_id, hash, ingested_at, epoch, publisher, at)
	SELECT ?1, id, seq, value, msg_id, hash, ingested_at, ?4, ?5, ?6 FROM
		(SELECT id, max(seq) AS seq, value, msg_id, hash, ingested_at, deleted FROM items WHERE topic = ?1 AND seq > ?2 AND seq <= ?3 GROUP BY id)
	WHERE deleted = 0
	ON CONFLICT (topic, id) DO UPDATE SET seq = excluded.seq, value = excluded.value, msg_id = excluded.msg_id, hash = excluded.hash,
		ingested_at = excluded.ingested_at, epoch = excluded.epoch, publisher = excluded.publisher, at = excluded.at`
	qSnapshotDelete = `DELETE FROM snapshot WHERE topic = ?1 AND id IN
		(SELECT id FROM (SELECT id, max(seq), deleted FROM items WHERE topic = ?1 AND seq > ?2 AND seq <= ?3 GROUP BY id) WHERE deleted = 1)`
	qSnapshotRows = `SELECT id, seq, value, msg_id, hash, ingested_at, epoch, publisher, at FROM snapshot WHERE topic = ? AND id > ? ORDER BY id LIMIT ?`
	qSnapshotDrop = `DELETE FROM snapshot WHERE topic = ?`
)

// migrateSnapshot creates the snapshot table and the items' deleted column
// if the file lacks them.
func (s *Store) migrateSnapshot(ctx context.Context) error {
	const missingColumn = `SELECT count(*) = 0 FROM pragma_table_info('items') WHERE name = 'deleted'`
	var done bool
	if err := s.rdb.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'snapshot')
		AND NOT (`+missingColumn+`)`).Scan(&done); err == nil && done {
		return nil
	}
	return s.schemaChange(ctx, "create snapshot table", func(tx *txn) error {
		var missing bool
		if err := tx.QueryRowContext(ctx, missingColumn).Scan(&missing); err != nil {
			return err
		}
		if missing {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE items ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0`); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, snapshotSchema)
		return err
	})
}

// schemaChange runs change in one write transaction: a schema change
// made apart from the main schema (migrate), idempotent, so that several
// processes opening the file at once make it once.
func (s *Store) schemaChange(ctx context.Context, what string, change func(tx *txn) error) error {
	defer s.beginWrite()()
	tx, err := s.begin(ctx, s.wdb, 200*time.Microsecond, 4*time.Millisecond)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", what, s.path, err)
	}
	defer tx.Rollback()
	if err := change(tx); err != nil {
		return fmt.Errorf("%s in %s: %w", what, s.path, wrapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s in %s: %w", what, s.path, wrapErr(err))
	}
	return nil
}

// commitSnapshot moves the snapshot with c, in c's transaction, once
// checkHashes found its items in the queue.
func commitSnapshot(ctx context.Context, tx *txn, c baton.Commit) error {
	last := c.Items[len(c.Items)-1].Seq
	// A commit with no tombstone, or none but tombstones, skips a
	// statement. Which items are tombstones the commit says, and its
	// hashes, which cover it, were found in the queue (checkHashes).
	live, tombs := false, false
	for _, it := range c.Items {
		if baton.HashItem(c.Topic, it.Update()) != it.Hash {
			return baton.Invalidf("items", "seq %d does not match its hash", it.Seq)
		}
		live, tombs = live || !it.Deleted, tombs || it.Deleted
	}
	if live {
		if _, err := tx.ExecContext(ctx, qSnapshotUpsert, c.Topic, c.PrevSeq, last, c.Epoch, c.Holder, nanos(c.At)); err != nil {
			return fmt.Errorf("commit %s: snapshot: %w", c.Topic, wrapErr(err))
		}
	}
	if tombs {
		if _, err := tx.ExecContext(ctx, qSnapshotDelete, c.Topic, c.PrevSeq, last); err != nil {
			return fmt.Errorf("commit %s: snapshot tombstones: %w", c.Topic, wrapErr(err))
		}
	}
	return nil
}

// Snapshot implements baton.Snapshots: the cursor and the rows are read in
// one read transaction, so they are one state of the file.
func (s *Store) Snapshot(ctx context.Context, topic, afterID string, limit int) (uint64, []baton.Published, string, error) {
	if err := baton.ValidateSnapshot(topic, afterID, limit); err != nil {
		return 0, nil, "", fmt.Errorf("snapshot: %w", err)
	}
	limit = min(limit, MaxRead)
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, nil, "", fmt.Errorf("snapshot: %w", wrapErr(err))
	}
	defer tx.Rollback()
	var seq uint64
	err = tx.QueryRowContext(ctx, `SELECT cursor_seq FROM topics WHERE topic = ?`, topic).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, "", nil
	}
	if err != nil {
		return 0, nil, "", fmt.Errorf("snapshot: %w", wrapErr(err))
	}
	rows, err := tx.StmtContext(ctx, s.rdb.hot.lookup(qSnapshotRows)).QueryContext(ctx, topic, afterID, limit+1)
	if err != nil {
		return 0, nil, "", fmt.Errorf("snapshot: %w", wrapErr(err))
	}
	defer rows.Close()
	out := make([]baton.Published, 0, limit)
	next := ""
	for rows.Next() {
		if len(out) == limit {
			next = out[limit-1].ID
			break
		}
		p := baton.Published{Item: baton.Item{Topic: topic}}
		var hb, v []byte
		var at, pat int64
		if err := rows.Scan(&p.ID, &p.Seq, &v, &p.MsgID, &hb, &at, &p.Epoch, &p.Publisher, &pat); err != nil {
			return 0, nil, "", fmt.Errorf("snapshot: %w", err)
		}
		p.Value, p.Hash, p.IngestedAt, p.PublishedAt = v, hashFrom(hb), fromNanos(at), fromNanos(pat)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, "", fmt.Errorf("snapshot: %w", wrapErr(err))
	}
	return seq, out, next, nil
}
