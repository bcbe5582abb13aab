package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// Prepared statements. modernc's SQLite parses every statement it is handed
// anew; the statements of the hot write paths (append, commit, the node
// lease renewal, the changes log) are prepared once per write connection,
// at Open, and a write transaction (txn) runs them as prepared.
const (
	qLogChange   = `INSERT INTO changes (topic, signals, origin) VALUES (?, ?, ?)`
	qEnsureTopic = `INSERT OR IGNORE INTO topics (topic) VALUES (?)`
	qLoadNode    = `SELECT epoch, ended, acquired_at, expires_at FROM nodes WHERE node = ?`
	qRenewNode   = `UPDATE nodes SET expires_at = ? WHERE node = ?`
	qInsertLeaf  = `INSERT INTO leaves (topic, seq, item_hash, epoch, publisher, at) VALUES (?, ?, ?, ?, ?, ?)`
	qSetCursor   = `UPDATE topics SET cursor_seq = ?, cursor_hash = ?, cursor_epoch = ?, cursor_at = ? WHERE topic = ?`
	qQueueHashes = `SELECT seq, hash FROM items WHERE topic = ? AND seq > ? AND seq <= ? ORDER BY seq`
	qLastSeq     = `SELECT last_seq FROM topics WHERE topic = ?`
	qInsertItem  = `INSERT INTO items (topic, seq, id, value, msg_id, hash, ingested_at, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (topic, msg_id) DO NOTHING`
	qSetLastSeq  = `UPDATE topics SET last_seq = ? WHERE topic = ?`
	qItems       = `SELECT seq, id, value, msg_id, hash, ingested_at, deleted FROM items WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?`
	qPublished   = `SELECT i.seq, i.id, i.value, i.msg_id, i.hash, i.ingested_at, i.deleted, l.epoch, l.publisher, l.at FROM items i JOIN leaves l ON l.topic = i.topic AND l.seq = i.seq WHERE i.topic = ? AND i.seq > ? AND i.seq <= (SELECT cursor_seq FROM topics WHERE topic = ?) ORDER BY i.seq LIMIT ?`
	qLeaves      = `SELECT seq, item_hash, epoch, publisher, at FROM leaves WHERE topic = ? AND seq > ? ORDER BY seq LIMIT ?`
)

// hotWrites are the statements prepared on each write connection,
// hotReads those on the readers: what a terminal's fan-out reads on every
// wake-up.
var (
	hotWrites = []string{qLogChange, qEnsureTopic, qLoadNode, qRenewNode, qInsertLeaf, qSetCursor, qQueueHashes, qLastSeq, qInsertItem, qSetLastSeq, topicQuery, qSnapshotUpsert, qSnapshotDelete}
	hotReads  = []string{qItems, qPublished, qLeaves, topicQuery, qSnapshotRows, qCheckpointTop, qCheckpointsAfter, qCosignatures}
)

// prepared is one *sql.DB's prepared hot statements, by text.
type prepared map[string]*sql.Stmt

// prepareHot prepares the statements qs on db (on each of its connections
// as it first uses it).
func prepareHot(ctx context.Context, db *sql.DB, qs []string) (prepared, error) {
	p := make(prepared, len(qs))
	for _, q := range qs {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("prepare statement: %w", wrapErr(err))
		}
		p[q] = st
	}
	return p, nil
}

func (p prepared) close() {
	for _, st := range p {
		st.Close()
	}
}

// txn is a write transaction that runs the hot statements as prepared
// (on its connection: database/sql re-prepares one only if the connection
// was replaced) and any other statement as given.
type txn struct {
	*sql.Tx
	hot prepared
}

func (t *txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.hot[q]; st != nil {
		return t.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, q, args...)
}

func (t *txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.hot[q]; st != nil {
		return t.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, q, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.hot[q]; st != nil {
		return t.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}

func (t *txn) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := t.hot[q]; st != nil {
		return t.StmtContext(ctx, st), nil
	}
	return t.Tx.PrepareContext(ctx, q)
}

// reader is the readers' pool, running the hot reads as prepared.
type reader struct {
	*sql.DB
	hot prepared
}

func (r *reader) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := r.hot[q]; st != nil {
		return st.QueryContext(ctx, args...)
	}
	return r.DB.QueryContext(ctx, q, args...)
}

func (r *reader) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := r.hot[q]; st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return r.DB.QueryRowContext(ctx, q, args...)
}
