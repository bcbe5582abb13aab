package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/baton-pub/baton"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

// writeLease is write for the lease operations (acquire, release,
// expire, and the node leases'), on a connection of their own, so that they
// never queue behind this process's appends, and polling for the file's
// write lock at a finer grain than other writes. Under sustained appends
// from several processes a renewal that waited its turn could wait past its
// lease's trust window, and the holder step down with no fault at all (a
// spurious hand-over). Lease writes are tiny and few, and they are what
// keeps publishing alive, so they get the lock first.
func (s *Store) writeLease(ctx context.Context, topic string, fn func(ctx context.Context, tx *txn) (baton.Signal, error)) error {
	return s.writeLeaseChanges(ctx, func(ctx context.Context, tx *txn) ([]change, error) {
		sig, err := fn(ctx, tx)
		return []change{{topic: topic, sig: sig}}, err
	})
}

// writeLeaseChanges is writeLease for a write that signals several topics
// (a node lease ending). Lease writes that wait for the lease connection at
// the same time share one transaction (leasebatch.go).
func (s *Store) writeLeaseChanges(ctx context.Context, fn func(ctx context.Context, tx *txn) ([]change, error)) error {
	return s.leases.do(ctx, fn)
}

// writeNode is writeLease for node lease renewals, on a connection of
// their own: one renewal keeps every topic lease of the node alive, so it
// must never queue behind this process's acquisitions (a node that takes a
// thousand topics at once makes a thousand of them).
func (s *Store) writeNode(ctx context.Context, fn func(ctx context.Context, tx *txn) ([]change, error)) error {
	defer s.beginWrite()()
	defer s.announce()()
	tx, err := s.begin(ctx, s.ndb, 50*time.Microsecond, time.Millisecond)
	if err != nil {
		return err
	}
	return s.finish(ctx, tx, func(tx *txn) ([]change, error) { return fn(ctx, tx) })
}

// begin starts an immediate transaction on db, whose connections have no
// busy timeout, polling for the file's write lock: first after about wait,
// doubling up to maxWait, for the busy timeout at most. SQLite's own busy
// handler sleeps 1, 2, 5, ... up to 100 ms between tries; under writes
// from several processes the lock is seldom free when it wakes, and those
// sleeps were the tail of every write's latency.
//
// While it waits it announces so, and tries again at the next ring of the
// bell too, which a commit rings while a writer waits (turn.go).
func (s *Store) begin(ctx context.Context, db *sql.DB, wait, maxWait time.Duration) (*txn, error) {
	var deadline <-chan time.Time
	for {
		if db != s.ndb {
			s.standBack()
		}
		_, rung := s.heardSoFar()
		tx, err := db.BeginTx(ctx, nil)
		if err == nil {
			return &txn{Tx: tx, hot: s.hot[db]}, nil
		}
		if !isBusy(err) {
			return nil, wrapErr(err)
		}
		if deadline == nil {
			d := time.NewTimer(s.opts.BusyTimeout)
			defer d.Stop()
			deadline = d.C
			defer s.announceWaiting()()
		}
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: waiting for the write lock: %v", baton.ErrUnavailable, ctx.Err())
		case <-deadline:
			t.Stop()
			return nil, fmt.Errorf("%w: waiting for the write lock: %v", baton.ErrUnavailable, err)
		case <-rung:
			t.Stop()
		case <-t.C:
		}
		wait = min(wait*2, maxWait)
	}
}

// change is a signal a write raises on a topic ("" for SignalNode): on
// this Store's hub once the write commits, and, through the changes log,
// on the hubs of the other processes (watch.go). logged marks a change the
// write already put in the log itself (a node lease ending logs its
// topics' in one statement).
type change struct {
	topic string
	sig   baton.Signal
	// quiet are the signals of sig logged for the other processes but
	// not raised in this one (an append published in its write, fused.go).
	quiet baton.Signal
	// unlogged are the signals of sig raised in this process but not
	// logged for the others (an append only this process's publisher
	// wants, queue.go).
	unlogged baton.Signal
	logged   bool
	// holder and epoch name an acquisition's new lock (recentlock.go).
	holder string
	epoch  uint64
}

// Keep the last changesKept rows of the changes log, pruning every
// pruneEvery rows a Store writes: a watcher polls every few milliseconds,
// and one that falls further behind wakes every subscription instead.
var (
	changesKept int64 = 10000
	pruneEvery  int64 = 1000
)

// finish runs fn in tx, logs its changes, commits and signals.
func (s *Store) finish(ctx context.Context, tx *txn, fn func(tx *txn) ([]change, error)) error {
	defer tx.Rollback()
	cs, err := fn(tx)
	if err != nil {
		return err
	}
	if err := s.logChanges(ctx, tx, cs); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return wrapErr(err)
	}
	s.signalled(cs)
	return nil
}

// signalled tells this process's subscribers of the changes cs, committed
// just now, and rings the bell for the other processes' watchers if any
// was logged, or for a writer that waits for the write lock (turn.go).
func (s *Store) signalled(cs []change) {
	rang := false
	for _, c := range cs {
		if c.sig == 0 {
			continue
		}
		s.heardLock(c.topic, c.sig, c.holder, c.epoch)
		s.sig.Notify(c.topic, c.sig&^c.quiet)
		if !rang && s.bell != nil && c.sig&^c.unlogged != 0 {
			s.bell.ring()
			rang = true
		}
	}
	if !rang && s.othersWait() {
		s.bell.ring()
	}
}

// logChanges appends the changes not yet logged to the changes log and
// prunes its front now and then. The newest row is never pruned, so ids
// never go back and a watcher can tell a gap (rows it missed) from a quiet
// file.
func (s *Store) logChanges(ctx context.Context, tx *txn, cs []change) error {
	var last int64
	for _, c := range cs {
		if c.sig&^c.unlogged == 0 || c.logged {
			continue
		}
		res, err := tx.ExecContext(ctx, qLogChange, c.topic, int64(c.sig&^c.unlogged), s.origin, c.holder, int64(c.epoch))
		if err != nil {
			return fmt.Errorf("log change: %w", wrapErr(err))
		}
		if last, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("log change: %w", wrapErr(err))
		}
	}
	if last == 0 || last-s.prunedAt.Load() < pruneEvery {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM changes WHERE id <= ?`, last-changesKept); err != nil {
		return fmt.Errorf("prune changes: %w", wrapErr(err))
	}
	s.prunedAt.Store(last) // only a hint: a rolled back prune is redone later
	return nil
}

func isBusy(err error) bool {
	var se *sqlite3.Error
	return errors.As(err, &se) && (se.Code()&0xff == sqlite3lib.SQLITE_BUSY || se.Code()&0xff == sqlite3lib.SQLITE_LOCKED)
}
