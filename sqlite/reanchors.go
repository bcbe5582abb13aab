package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/baton-pub/baton"
)

// reanchorsSchema is the table of the ledger's re-anchor records
// (baton.Reanchors). It is its own migration (migrateReanchors),
// idempotent, so that it merges with other schema changes.
const reanchorsSchema = `
CREATE TABLE IF NOT EXISTS reanchors (
	topic TEXT NOT NULL,
	n     INTEGER NOT NULL, -- 1, 2 ... in the order they were added
	note  BLOB NOT NULL,
	PRIMARY KEY (topic, n)
) WITHOUT ROWID;
`

// migrateReanchors creates the re-anchors table if the file lacks it.
func (s *Store) migrateReanchors(ctx context.Context) error {
	return s.ensureTables(ctx, []string{"reanchors"}, reanchorsSchema)
}

// ensureTables runs schema (idempotent CREATE ... IF NOT EXISTS) unless
// the file has every table of tables: a migration of its own, which
// merges with other schema changes (migrateLifecycle, migrateReanchors),
// made in one transaction by schemaChange (snapshot.go).
func (s *Store) ensureTables(ctx context.Context, tables []string, schema string) error {
	var n int
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (` + strings.Repeat("?, ", len(tables)-1) + `?)`
	args := make([]any, len(tables))
	for i, t := range tables {
		args[i] = t
	}
	if err := s.rdb.QueryRowContext(ctx, q, args...).Scan(&n); err == nil && n == len(tables) {
		return nil
	}
	return s.schemaChange(ctx, fmt.Sprintf("create tables %v", tables), func(tx *txn) error {
		_, err := tx.ExecContext(ctx, schema)
		return err
	})
}

// AddReanchor implements baton.Reanchors.
func (s *Store) AddReanchor(ctx context.Context, r baton.Reanchor) error {
	if err := baton.ValidateReanchor(r); err != nil {
		return err
	}
	return s.write(ctx, r.Topic, func(ctx context.Context, tx *txn) (baton.Signal, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM reanchors WHERE topic = ?`, r.Topic).Scan(&n); err != nil {
			return 0, fmt.Errorf("add re-anchor: %w", wrapErr(err))
		}
		if n >= baton.MaxReanchors {
			return 0, baton.Invalidf("topic", "already %d re-anchors", baton.MaxReanchors)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO reanchors (topic, n, note) VALUES (?, ?, ?)`, r.Topic, n+1, r.Note); err != nil {
			return 0, fmt.Errorf("add re-anchor: %w", wrapErr(err))
		}
		return baton.SignalCommit, nil
	})
}

// Reanchors implements baton.Reanchors.
func (s *Store) Reanchors(ctx context.Context, topic string) ([]baton.Reanchor, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT note FROM reanchors WHERE topic = ? ORDER BY n`, topic)
	if err != nil {
		return nil, fmt.Errorf("list re-anchors of %s: %w", topic, wrapErr(err))
	}
	defer rows.Close()
	var out []baton.Reanchor
	for rows.Next() {
		r := baton.Reanchor{Topic: topic}
		if err := rows.Scan(&r.Note); err != nil {
			return nil, fmt.Errorf("list re-anchors of %s: %w", topic, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
