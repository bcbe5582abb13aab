package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Prepared statements. modernc's SQLite parses every statement it is handed
// anew; the statements of the hot write paths (append, commit, the node
// lease renewal, the changes log) are prepared once per write connection,
// at Open, and a write transaction (txn) runs them as prepared.
const (
	qLogChange   = `INSERT INTO changes (topic, signals, origin, holder, epoch) VALUES (?, ?, ?, ?, ?)`
	qEnsureTopic = `INSERT OR IGNORE INTO topics (topic) VALUES (?)`
	qLoadNode    = `SELECT epoch, ended, acquired_at, expires_at FROM nodes WHERE node = ?`
	qRenewNode   = `UPDATE nodes SET expires_at = ? WHERE node = ?`
	qInsertLeaf  = `INSERT INTO leaves (topic, seq, item_hash, epoch, publisher, at) VALUES (?, ?, ?, ?, ?, ?)`
	qSetCursor   = `UPDATE topics SET cursor_seq = ?, cursor_hash = ?, cursor_epoch = ?, cursor_at = ? WHERE topic = ?`
	qQueueHashes = `SELECT seq, hash FROM items WHERE topic = ? AND seq > ? AND seq <= ? ORDER BY seq`
	qLastSeq     = `SELECT last_seq, holder, epoch FROM topics WHERE topic = ?`
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

// prepared is one *sql.DB's prepared statements, by text: the hot ones,
// prepared at Open, and every other statement a write transaction ran
// (learned): modernc parses a statement it is handed as text on every run,
// and a crash hand-over of thousands of topics ran each of the acquire's
// and the batches' savepoint statements thousands of times in a few
// seconds, a sixth of the write lock's time spent parsing
// (docs/benchmarks.md, "Fewer statements per topic in a mass hand-over").
// A statement first seen in a transaction runs as text and is prepared on
// its *sql.DB once the transaction has ended (the write connections are
// one each: a prepare inside the transaction would wait for itself).
type prepared struct {
	db *sql.DB
	m  atomic.Pointer[map[string]*sql.Stmt] // replaced, never changed
	mu sync.Mutex
	// missed are statements run as text since the last learn.
	missed map[string]bool
}

// maxPrepared bounds the statements a *sql.DB keeps prepared: the code's
// statements are a few dozen texts; one built with values in it would be
// prepared again and again, and is run as text past the bound.
const maxPrepared = 256

// prepareHot prepares the statements qs on db (on each of its connections
// as it first uses it).
func prepareHot(ctx context.Context, db *sql.DB, qs []string) (*prepared, error) {
	p := &prepared{db: db}
	m := make(map[string]*sql.Stmt, len(qs))
	p.m.Store(&m)
	for _, q := range qs {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("prepare statement: %w", wrapErr(err))
		}
		m[q] = st
	}
	return p, nil
}

// get returns q prepared, or nil (noted, to prepare at the next learn).
func (p *prepared) get(q string) *sql.Stmt {
	if p == nil {
		return nil
	}
	m := *p.m.Load()
	if st := m[q]; st != nil {
		return st
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(m)+len(p.missed) < maxPrepared {
		if p.missed == nil {
			p.missed = make(map[string]bool)
		}
		p.missed[q] = true
	}
	return nil
}

// learn prepares the statements missed so far. It must not be called
// while a transaction holds one of db's connections that db needs.
func (p *prepared) learn() {
	if p == nil {
		return
	}
	p.mu.Lock()
	missed := p.missed
	p.missed = nil
	p.mu.Unlock()
	if len(missed) == 0 {
		return
	}
	add := make(map[string]*sql.Stmt, len(missed))
	for q := range missed {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := p.db.PrepareContext(ctx, q)
		cancel()
		if err == nil { // else run as text again, and noted again
			add[q] = st
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.m.Load()
	m := make(map[string]*sql.Stmt, len(old)+len(add))
	for q, st := range old {
		m[q] = st
	}
	for q, st := range add {
		if m[q] != nil {
			st.Close() // learned meanwhile by another transaction's end
			continue
		}
		m[q] = st
	}
	p.m.Store(&m)
}

func (p *prepared) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, st := range *p.m.Load() {
		st.Close()
	}
}

// txn is a write transaction that runs the prepared statements as such
// (on its connection: database/sql re-prepares one only if the connection
// was replaced) and any other statement as given, noting it to prepare
// once the transaction has ended (Commit, Rollback).
type txn struct {
	*sql.Tx
	hot *prepared
}

func (t *txn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if st := t.hot.get(q); st != nil {
		return t.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, q, args...)
}

func (t *txn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.hot.get(q); st != nil {
		return t.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, q, args...)
}

func (t *txn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.hot.get(q); st != nil {
		return t.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, q, args...)
}

func (t *txn) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := t.hot.get(q); st != nil {
		return t.StmtContext(ctx, st), nil
	}
	return t.Tx.PrepareContext(ctx, q)
}

// Commit commits, then prepares the statements the transaction ran as
// text.
func (t *txn) Commit() error {
	err := t.Tx.Commit()
	t.hot.learn()
	return err
}

// Rollback rolls back (after Commit: nothing), then prepares the
// statements the transaction ran as text.
func (t *txn) Rollback() error {
	err := t.Tx.Rollback()
	t.hot.learn()
	return err
}

// reader is the readers' pool, running the hot reads as prepared.
type reader struct {
	*sql.DB
	hot *prepared
}

func (r *reader) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := r.hot.lookup(q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return r.DB.QueryContext(ctx, q, args...)
}

func (r *reader) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	if st := r.hot.lookup(q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return r.DB.QueryRowContext(ctx, q, args...)
}

// lookup returns q prepared, or nil; it learns nothing (the readers keep
// the hot reads only).
func (p *prepared) lookup(q string) *sql.Stmt {
	if p == nil {
		return nil
	}
	return (*p.m.Load())[q]
}
