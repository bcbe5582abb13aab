package sqlite

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/baton-pub/baton"
)

// secretsSchema holds the keys the nodes of one file share. It is its own
// migration (ensureTables), made at the first ForwardKey.
const secretsSchema = `
CREATE TABLE IF NOT EXISTS secrets (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;
`

// forwardKeySize is the size of the key ForwardKey makes (forward.KeySize).
const forwardKeySize = 32

// ForwardKey returns the key with which the nodes of this file sign the
// appends they forward to each other (forward.Sign), made at random by the
// first node to ask. Whoever can read the file can sign: the same people
// who could write items into it (docs/security.md).
func (s *Store) ForwardKey(ctx context.Context) ([]byte, error) {
	if err := s.ensureTables(ctx, []string{"secrets"}, secretsSchema); err != nil {
		return nil, fmt.Errorf("forward key: %w", err)
	}
	key := make([]byte, forwardKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("forward key: %w", err)
	}
	err := s.write(ctx, "", func(ctx context.Context, tx *txn) (baton.Signal, error) {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO secrets (name, value) VALUES ('forward', ?)`, key); err != nil {
			return 0, err
		}
		return 0, tx.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = 'forward'`).Scan(&key)
	})
	if err != nil {
		return nil, fmt.Errorf("forward key: %w", wrapErr(err))
	}
	if len(key) != forwardKeySize {
		return nil, fmt.Errorf("forward key: %d bytes in the file, want %d", len(key), forwardKeySize)
	}
	return key, nil
}
