package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-pub/baton"
)

// Heartbeat implements baton.Members.
func (s *Store) Heartbeat(ctx context.Context, m baton.Member, ttl time.Duration) error {
	if err := baton.ValidateHeartbeat(m, ttl); err != nil {
		return err
	}
	now := s.now()
	err := s.write(ctx, "", func(ctx context.Context, tx *txn) (baton.Signal, error) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO members (node, addr, state, leases, public_key, heartbeat, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (node) DO UPDATE SET addr = excluded.addr, state = excluded.state, leases = excluded.leases,
			public_key = excluded.public_key, heartbeat = excluded.heartbeat, expires_at = excluded.expires_at`,
			m.Node, m.Addr, string(m.State), m.Leases, m.PublicKey, nanos(now), nanos(now.Add(ttl))); err != nil {
			return 0, err
		}
		if len(m.PublicKey) > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO node_keys (node, public_key, at) VALUES (?, ?, ?)`,
				m.Node, m.PublicKey, nanos(now)); err != nil {
				return 0, err
			}
		}
		return 0, nil
	})
	if err != nil {
		return fmt.Errorf("heartbeat: %w", wrapErr(err))
	}
	return nil
}

// Leave implements baton.Members.
func (s *Store) Leave(ctx context.Context, node string) error {
	if err := baton.ValidateLeave(node); err != nil {
		return err
	}
	err := s.write(ctx, "", func(ctx context.Context, tx *txn) (baton.Signal, error) {
		_, err := tx.ExecContext(ctx, `DELETE FROM members WHERE node = ?`, node)
		return 0, wrapErr(err)
	})
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// Members implements baton.Members.
func (s *Store) Members(ctx context.Context) ([]baton.Member, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT node, addr, state, leases, public_key, heartbeat, expires_at
		FROM members WHERE expires_at > ? ORDER BY node`, nanos(s.now()))
	if err != nil {
		return nil, fmt.Errorf("list members: %w", wrapErr(err))
	}
	defer rows.Close()
	var out []baton.Member
	for rows.Next() {
		var m baton.Member
		var state string
		var hb, exp int64
		if err := rows.Scan(&m.Node, &m.Addr, &state, &m.Leases, &m.PublicKey, &hb, &exp); err != nil {
			return nil, fmt.Errorf("list members: %w", err)
		}
		m.State, m.Heartbeat, m.ExpiresAt = baton.MemberState(state), fromNanos(hb), fromNanos(exp)
		out = append(out, m)
	}
	return out, rows.Err()
}
