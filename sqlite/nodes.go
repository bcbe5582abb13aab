package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/baton-pub/baton"
)

// Node leases (baton.Locks, docs/design.md, node leases): a row of the
// nodes table per node, its latest node lease. Topic leases point at it by
// (holder, node_epoch); see schema.sql for the invariant that keeps them
// consistent.

// nodeRow is a node's latest node lease (epoch 0 if it never had one).
type nodeRow struct {
	node                  string
	epoch                 uint64
	ended                 bool
	acquiredAt, expiresAt int64
}

// live reports whether the node lease is live at now.
func (n nodeRow) live(now int64) bool { return n.epoch > 0 && !n.ended && n.expiresAt > now }

// lapsed reports whether the node lease lapsed without being ended.
func (n nodeRow) lapsed(now int64) bool { return n.epoch > 0 && !n.ended && n.expiresAt <= now }

func (n nodeRow) lease(now int64) baton.NodeLease {
	return baton.NodeLease{Node: n.node, Epoch: n.epoch, AcquiredAt: fromNanos(n.acquiredAt),
		ExpiresAt: fromNanos(n.expiresAt), Remaining: time.Duration(n.expiresAt - now)}
}

func loadNode(ctx context.Context, q querier, node string) (nodeRow, error) {
	n := nodeRow{node: node}
	err := q.QueryRowContext(ctx, qLoadNode, node).Scan(
		&n.epoch, &n.ended, &n.acquiredAt, &n.expiresAt)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("read node lease %s: %w", node, wrapErr(err))
	}
	return n, nil
}

// heldBy is the condition, on topics, of the unrecorded topic leases under
// a node lease (holder, node_epoch): it matches the topics_held index.
const heldBy = `holder = ? AND epoch > recorded_epoch AND node_epoch = ?`

// endNode ends the node lease n: it writes the record of every topic lease
// under it with reason, ended at at, logs a SignalLock and SignalFreed
// change for each, in
// three statements whatever their number, and marks n ended. The caller
// adds the SignalNode change.
func (s *Store) endNode(ctx context.Context, tx *txn, n nodeRow, reason baton.ReleaseReason, at int64) ([]baton.ReleaseRecord, []change, error) {
	rows, err := tx.QueryContext(ctx, `INSERT INTO releases (topic, epoch, holder, reason, at, last_seq, last_hash)
		SELECT topic, epoch, holder, ?, ?, cursor_seq, cursor_hash FROM topics WHERE `+heldBy+`
		RETURNING topic, epoch, last_seq, last_hash`, string(reason), at, n.node, n.epoch)
	if err != nil {
		return nil, nil, fmt.Errorf("end node lease %s: %w", n.node, wrapErr(err))
	}
	var recs []baton.ReleaseRecord
	for rows.Next() {
		r := baton.ReleaseRecord{Holder: n.node, Reason: reason, At: fromNanos(at)}
		var lh []byte
		if err := rows.Scan(&r.Topic, &r.Epoch, &r.LastSeq, &lh); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("end node lease %s: %w", n.node, err)
		}
		r.LastHash = hashFrom(lh)
		recs = append(recs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("end node lease %s: %w", n.node, wrapErr(err))
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Topic < recs[j].Topic })
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO changes (topic, signals, origin) SELECT topic, ?, ? FROM topics WHERE ` + heldBy,
			[]any{int64(baton.SignalLock | baton.SignalFreed), s.origin, n.node, n.epoch}},
		{`UPDATE topics SET recorded_epoch = epoch, expires_at = ? WHERE ` + heldBy, []any{at, n.node, n.epoch}},
		{`UPDATE nodes SET ended = 1, expires_at = min(expires_at, ?) WHERE node = ?`, []any{at, n.node}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return nil, nil, fmt.Errorf("end node lease %s: %w", n.node, wrapErr(err))
		}
	}
	cs := make([]change, 0, len(recs)+1)
	for _, r := range recs {
		cs = append(cs, change{topic: r.Topic, sig: baton.SignalLock | baton.SignalFreed, logged: true})
	}
	return recs, append(cs, change{sig: baton.SignalNode}), nil
}

// AcquireNode implements baton.Locks.
func (s *Store) AcquireNode(ctx context.Context, node string, ttl time.Duration) (baton.NodeLease, error) {
	if err := baton.ValidateNodeLease(node, ttl); err != nil {
		return baton.NodeLease{}, err
	}
	var out baton.NodeLease
	err := s.writeLeaseChanges(ctx, func(ctx context.Context, tx *txn) ([]change, error) {
		now := nanos(s.now())
		n, err := loadNode(ctx, tx, node)
		if err != nil {
			return nil, err
		}
		if n.live(now) {
			return nil, fmt.Errorf("acquire node %s: epoch %d is live: %w", node, n.epoch, baton.ErrLeaseHeld)
		}
		cs := []change{{sig: baton.SignalNode}}
		if n.lapsed(now) {
			if _, cs, err = s.endNode(ctx, tx, n, baton.ReasonExpired, n.expiresAt); err != nil {
				return nil, err
			}
		}
		n = nodeRow{node: node, epoch: n.epoch + 1, acquiredAt: now, expiresAt: now + int64(ttl)}
		if _, err := tx.ExecContext(ctx, `INSERT INTO nodes (node, epoch, ended, acquired_at, expires_at) VALUES (?, ?, 0, ?, ?)
			ON CONFLICT (node) DO UPDATE SET epoch = excluded.epoch, ended = 0, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`,
			node, n.epoch, n.acquiredAt, n.expiresAt); err != nil {
			return nil, fmt.Errorf("acquire node %s: %w", node, wrapErr(err))
		}
		out = n.lease(now)
		return cs, nil
	})
	return out, err
}

// liveNode reads nl's node row in tx. If nl is live, it returns it; if
// nl lapsed without being ended, it ends it (the changes to commit) and
// reports lost; otherwise it returns ErrLeaseLost. A caller that gets lost
// commits and then fails with ErrLeaseLost.
func (s *Store) liveNode(ctx context.Context, tx *txn, nl baton.NodeLease, now int64, op string) (n nodeRow, cs []change, lost bool, err error) {
	n, err = loadNode(ctx, tx, nl.Node)
	if err != nil {
		return n, nil, false, err
	}
	if n.epoch == nl.Epoch && n.live(now) {
		return n, nil, false, nil
	}
	if n.epoch == nl.Epoch && n.lapsed(now) {
		_, cs, err = s.endNode(ctx, tx, n, baton.ReasonExpired, n.expiresAt)
		return n, cs, err == nil, err
	}
	return n, nil, false, fmt.Errorf("%s %s epoch %d: %w", op, nl.Node, nl.Epoch, baton.ErrLeaseLost)
}

// RenewNode implements baton.Locks. A renewal logs no change: it wakes
// nobody, here or in other processes.
func (s *Store) RenewNode(ctx context.Context, nl baton.NodeLease, ttl time.Duration) (baton.NodeLease, error) {
	if err := baton.ValidateNodeLease(nl.Node, ttl); err != nil {
		return baton.NodeLease{}, err
	}
	var out baton.NodeLease
	var lost bool
	err := s.writeNode(ctx, func(ctx context.Context, tx *txn) ([]change, error) {
		now := nanos(s.now())
		n, cs, l, err := s.liveNode(ctx, tx, nl, now, "renew node")
		if lost = l; err != nil || lost {
			return cs, err
		}
		n.expiresAt = now + int64(ttl)
		if _, err := tx.ExecContext(ctx, qRenewNode, n.expiresAt, nl.Node); err != nil {
			return nil, fmt.Errorf("renew node %s: %w", nl.Node, wrapErr(err))
		}
		out = n.lease(now)
		return nil, nil
	})
	if err == nil && lost {
		err = fmt.Errorf("renew node %s epoch %d: expired: %w", nl.Node, nl.Epoch, baton.ErrLeaseLost)
	}
	return out, err
}

// ReleaseNode implements baton.Locks.
func (s *Store) ReleaseNode(ctx context.Context, nl baton.NodeLease, reason baton.ReleaseReason) ([]baton.ReleaseRecord, error) {
	if err := baton.ValidateNodeRelease(nl, reason); err != nil {
		return nil, err
	}
	var recs []baton.ReleaseRecord
	var lost bool
	err := s.writeLeaseChanges(ctx, func(ctx context.Context, tx *txn) ([]change, error) {
		now := nanos(s.now())
		n, cs, l, err := s.liveNode(ctx, tx, nl, now, "release node")
		if lost = l; err != nil || lost {
			return cs, err
		}
		recs, cs, err = s.endNode(ctx, tx, n, reason, now)
		return cs, err
	})
	if err == nil && lost {
		err = fmt.Errorf("release node %s epoch %d: expired: %w", nl.Node, nl.Epoch, baton.ErrLeaseLost)
	}
	return recs, err
}

// ExpireNode implements baton.Locks.
func (s *Store) ExpireNode(ctx context.Context, node string) ([]baton.ReleaseRecord, error) {
	if err := baton.ValidateLeave(node); err != nil {
		return nil, err
	}
	var recs []baton.ReleaseRecord
	err := s.writeLeaseChanges(ctx, func(ctx context.Context, tx *txn) ([]change, error) {
		now := nanos(s.now())
		n, err := loadNode(ctx, tx, node)
		if err != nil {
			return nil, err
		}
		if n.live(now) {
			return nil, fmt.Errorf("expire node %s: epoch %d is live: %w", node, n.epoch, baton.ErrLeaseHeld)
		}
		if !n.lapsed(now) {
			return nil, fmt.Errorf("expire node %s: no lapsed node lease: %w", node, baton.ErrNotFound)
		}
		var cs []change
		recs, cs, err = s.endNode(ctx, tx, n, baton.ReasonExpired, n.expiresAt)
		return cs, err
	})
	return recs, err
}

// NodeLeases implements baton.Locks.
func (s *Store) NodeLeases(ctx context.Context) ([]baton.NodeLease, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT n.node, n.epoch, n.acquired_at, n.expires_at,
		(SELECT count(*) FROM topics t WHERE t.holder = n.node AND t.epoch > t.recorded_epoch AND t.node_epoch = n.epoch)
		FROM nodes n WHERE n.ended = 0 ORDER BY n.node`)
	if err != nil {
		return nil, fmt.Errorf("list node leases: %w", wrapErr(err))
	}
	defer rows.Close()
	now := nanos(s.now())
	var out []baton.NodeLease
	for rows.Next() {
		var n nodeRow
		var leases int
		if err := rows.Scan(&n.node, &n.epoch, &n.acquiredAt, &n.expiresAt, &leases); err != nil {
			return nil, fmt.Errorf("list node leases: %w", err)
		}
		l := n.lease(now)
		l.Leases = leases
		out = append(out, l)
	}
	return out, rows.Err()
}
