package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/baton-pub/baton"
)

// Append implements baton.Queue.
func (s *Store) Append(ctx context.Context, topic string, updates []baton.Update) ([]baton.Receipt, error) {
	if err := baton.ValidateAppend(topic, updates); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if len(updates) == 0 {
		return nil, nil
	}
	return s.appends.do(s, &appendReq{ctx: ctx, topic: topic, updates: updates})
}

// appendFn appends the updates of every request (all to one topic) in one
// write, in order, as if each had been appended alone: each request's
// receipts are set; an error fails them all (nothing is written). The
// items it adds are offered to the topic's publisher in this process, if
// one is registered (fused.go), and f records the commit it proposed.
func (s *Store) appendFn(topic string, reqs []*appendReq, f *fusedCommit) func(ctx context.Context, tx *txn) ([]change, error) {
	return func(ctx context.Context, tx *txn) ([]change, error) {
		sig, quiet, unlogged, err := s.appendIn(ctx, tx, topic, reqs, f)
		return []change{{topic: topic, sig: sig, quiet: quiet, unlogged: unlogged}}, err
	}
}

// appendIn is appendFn's write. quiet are the signals not to raise in
// this process (see baton.AppendPublisher), unlogged those not to log for
// the other processes: SignalAppend while the topic's lock is the lease of
// its publisher in this process, the one publisher an append could wake
// (docs/benchmarks.md, "Appends told only to whom they concern").
func (s *Store) appendIn(ctx context.Context, tx *txn, topic string, reqs []*appendReq, f *fusedCommit) (sig, quiet, unlogged baton.Signal, _ error) {
	fail := func(err error) (baton.Signal, baton.Signal, baton.Signal, error) { return 0, 0, 0, err }
	// The topic's row is read first: an append to a topic that exists
	// costs no insert.
	var last, epoch uint64
	var holder string
	err := tx.QueryRowContext(ctx, qLastSeq, topic).Scan(&last, &holder, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		created, cerr := ensureTopic(ctx, tx, topic)
		if cerr != nil {
			return fail(cerr)
		}
		if created {
			sig |= baton.SignalTopic | baton.SignalLock
		}
		err = tx.QueryRowContext(ctx, qLastSeq, topic).Scan(&last, &holder, &epoch)
	}
	if err != nil {
		return fail(fmt.Errorf("append: %w", wrapErr(err)))
	}
	// The msg id index decides: an insert that conflicts on it is a retry,
	// and only then is the original looked up. A fresh update, the common
	// case, costs one statement.
	ins, err := tx.PrepareContext(ctx, qInsertItem)
	if err != nil {
		return fail(fmt.Errorf("append: %w", wrapErr(err)))
	}
	defer ins.Close()
	now := nanos(s.now())
	first := last
	// added are the items written, for the topic's publisher here, if it
	// has registered (fused.go).
	var added []baton.Item
	p := s.fused.Get(topic)
	for _, r := range reqs {
		receipts := make([]baton.Receipt, len(r.updates))
		inBatch := make(map[string]int, len(r.updates))
		for i, u := range r.updates {
			if j, ok := inBatch[u.MsgID]; ok {
				receipts[i] = receipts[j]
				receipts[i].Duplicate = true
				continue
			}
			h := baton.HashItem(topic, u)
			res, err := ins.ExecContext(ctx, topic, last+1, u.ID, []byte(u.Value), u.MsgID, h[:], now, u.Deleted)
			if err != nil {
				return fail(fmt.Errorf("append: %w", wrapErr(err)))
			}
			if n, err := res.RowsAffected(); err != nil {
				return fail(fmt.Errorf("append: %w", wrapErr(err)))
			} else if n == 0 {
				var seq uint64
				var hb []byte
				if err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM items WHERE topic = ? AND msg_id = ?`, topic, u.MsgID).Scan(&seq, &hb); err != nil {
					return fail(fmt.Errorf("append: look up msg id %q: %w", u.MsgID, wrapErr(err)))
				}
				receipts[i] = baton.Receipt{Seq: seq, Hash: hashFrom(hb), MsgID: u.MsgID, Duplicate: true}
				continue
			}
			last++
			receipts[i] = baton.Receipt{Seq: last, Hash: h, MsgID: u.MsgID}
			inBatch[u.MsgID] = i
			if p != nil {
				it := baton.Item{Topic: topic, Seq: last, ID: u.ID, MsgID: u.MsgID, Hash: h, IngestedAt: fromNanos(now), Deleted: u.Deleted}
				if u.Value != nil {
					it.Value = append(json.RawMessage{}, u.Value...)
				}
				added = append(added, it)
			}
		}
		r.receipts = receipts
	}
	if last == first {
		return sig, 0, 0, nil
	}
	if _, err := tx.ExecContext(ctx, qSetLastSeq, last, topic); err != nil {
		return fail(fmt.Errorf("append: %w", wrapErr(err)))
	}
	sig |= baton.SignalAppend
	published, err := s.publishOnAppend(ctx, tx, p, added, f)
	if err != nil {
		return fail(err)
	}
	if published {
		sig |= baton.SignalCommit
		quiet = baton.SignalAppend
	}
	if rp, ok := p.(baton.RestingProposer); ok {
		if l := rp.HeldLease(); l.Holder == holder && l.Epoch == epoch {
			unlogged = baton.SignalAppend
		}
	}
	return sig, quiet, unlogged, nil
}

func (s *Store) checkTrimmed(ctx context.Context, topic string, after uint64) error {
	var below uint64
	err := s.rdb.QueryRowContext(ctx, `SELECT trimmed_below FROM topics WHERE topic = ?`, topic).Scan(&below)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, wrapErr(err))
	}
	if below > 0 && after < below-1 { // after+1 < below, without overflow
		return fmt.Errorf("%s after %d: earliest kept is %d: %w", topic, after, below, baton.ErrTrimmed)
	}
	return nil
}

// seqArg passes a position to SQLite, which takes no uint64 above 2^63-1:
// a larger one is read as baton.MaxSeq, beyond every seq kept (seqs are
// INTEGER columns), so a read after it is empty, as after the last seq.
func seqArg(n uint64) int64 {
	return int64(min(n, baton.MaxSeq))
}

// MaxRead is the most rows one read returns.
const MaxRead = 10000

// checkRead checks a paged read's arguments (baton.ValidateRead) and caps
// its limit at MaxRead.
func checkRead(topic string, limit int) (int, error) {
	if err := baton.ValidateRead(topic, limit); err != nil {
		return 0, err
	}
	return min(limit, MaxRead), nil
}

// Items implements baton.Queue.
func (s *Store) Items(ctx context.Context, topic string, after uint64, limit int) ([]baton.Item, error) {
	limit, err := checkRead(topic, limit)
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, qItems, topic, seqArg(after), limit)
	if err != nil {
		return nil, fmt.Errorf("read items: %w", wrapErr(err))
	}
	defer rows.Close()
	var out []baton.Item
	for rows.Next() {
		it := baton.Item{Topic: topic}
		var hb, v []byte
		var at int64
		if err := rows.Scan(&it.Seq, &it.ID, &v, &it.MsgID, &hb, &at, &it.Deleted); err != nil {
			return nil, fmt.Errorf("read items: %w", err)
		}
		it.Value, it.Hash, it.IngestedAt = v, hashFrom(hb), fromNanos(at)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read items: %w", wrapErr(err))
	}
	if len(out) == 0 || out[0].Seq != after+1 {
		if err := s.checkTrimmed(ctx, topic, after); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SeqOfHash implements baton.Queue.
func (s *Store) SeqOfHash(ctx context.Context, topic string, h baton.Hash) (uint64, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return 0, err
	}
	var seq uint64
	err := s.rdb.QueryRowContext(ctx, `SELECT seq FROM items WHERE topic = ? AND hash = ?`, topic, h[:]).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("hash %s in %s: %w", h, topic, baton.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("look up hash: %w", wrapErr(err))
	}
	return seq, nil
}

// Topics implements baton.Queue.
func (s *Store) Topics(ctx context.Context) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT topic FROM topics ORDER BY topic`)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", wrapErr(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("list topics: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Topic implements baton.Queue.
func (s *Store) Topic(ctx context.Context, topic string) (baton.TopicInfo, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.TopicInfo{}, err
	}
	info := baton.TopicInfo{Topic: topic}
	r, ok, err := loadTopic(ctx, s.rdb, topic)
	if err != nil {
		return info, err
	}
	if !ok {
		return info, fmt.Errorf("topic %s: %w", topic, baton.ErrNotFound)
	}
	info.LastSeq = r.lastSeq
	if r.lastSeq >= r.trimmedBelow {
		var first sql.NullInt64
		if err := s.rdb.QueryRowContext(ctx, `SELECT min(seq) FROM items WHERE topic = ? AND seq >= ?`, topic, r.trimmedBelow).Scan(&first); err != nil {
			return info, fmt.Errorf("read %s: %w", topic, wrapErr(err))
		}
		if first.Valid {
			info.FirstSeq = uint64(first.Int64)
		}
	}
	return info, nil
}

// Trim implements baton.Queue. It keeps the cursor's own item, whose hash a
// successor looks up to resume.
func (s *Store) Trim(ctx context.Context, topic string, before uint64) (int, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return 0, err
	}
	var n int64
	err := s.write(ctx, topic, func(ctx context.Context, tx *txn) (baton.Signal, error) {
		r, ok, err := loadTopic(ctx, tx, topic)
		if err != nil || !ok {
			return 0, err
		}
		if before > r.cursorSeq {
			before = r.cursorSeq
		}
		if before <= r.trimmedBelow {
			return 0, nil
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM items WHERE topic = ? AND seq < ?`, topic, before)
		if err != nil {
			return 0, fmt.Errorf("trim %s: %w", topic, wrapErr(err))
		}
		n, _ = res.RowsAffected()
		if _, err := tx.ExecContext(ctx, `UPDATE topics SET trimmed_below = ? WHERE topic = ?`, before, topic); err != nil {
			return 0, fmt.Errorf("trim %s: %w", topic, wrapErr(err))
		}
		return 0, nil
	})
	return int(n), err
}
