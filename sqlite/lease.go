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

// writeLease is write for the lease operations (acquire, renew, release,
// expire), on a connection of their own, so that they never queue behind
// this process's appends, and polling for the file's write lock at a finer
// grain than other writes. Under sustained appends from several processes
// a renewal that waited its turn could wait past its lease's trust window,
// and the holder step down with no fault at all (a spurious hand-over).
// Lease writes are tiny and few, and they are what keeps publishing alive,
// so they get the lock first.
func (s *Store) writeLease(ctx context.Context, topic string, fn func(tx *sql.Tx) (baton.Signal, error)) error {
	defer s.beginWrite()()
	tx, err := s.begin(ctx, s.ldb, 100*time.Microsecond, 2*time.Millisecond)
	if err != nil {
		return err
	}
	return s.finish(tx, topic, fn)
}

// begin starts an immediate transaction on db, whose connections have no
// busy timeout, polling for the file's write lock: first after about wait,
// doubling up to maxWait, for the busy timeout at most. SQLite's own busy
// handler sleeps 1, 2, 5, ... up to 100 ms between tries; under writes
// from several processes the lock is seldom free when it wakes, and those
// sleeps were the tail of every write's latency.
func (s *Store) begin(ctx context.Context, db *sql.DB, wait, maxWait time.Duration) (*sql.Tx, error) {
	var deadline <-chan time.Time
	for {
		tx, err := db.BeginTx(ctx, nil)
		if err == nil {
			return tx, nil
		}
		if !isBusy(err) {
			return nil, wrapErr(err)
		}
		if deadline == nil {
			d := time.NewTimer(s.opts.BusyTimeout)
			defer d.Stop()
			deadline = d.C
		}
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: waiting for the write lock: %v", baton.ErrUnavailable, ctx.Err())
		case <-deadline:
			t.Stop()
			return nil, fmt.Errorf("%w: waiting for the write lock: %v", baton.ErrUnavailable, err)
		case <-t.C:
		}
		wait = min(wait*2, maxWait)
	}
}

// finish runs fn in tx, commits and signals.
func (s *Store) finish(tx *sql.Tx, topic string, fn func(tx *sql.Tx) (baton.Signal, error)) error {
	defer tx.Rollback()
	sig, err := fn(tx)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return wrapErr(err)
	}
	if sig != 0 {
		s.sig.Notify(topic, sig)
	}
	return nil
}

func isBusy(err error) bool {
	var se *sqlite3.Error
	return errors.As(err, &se) && (se.Code()&0xff == sqlite3lib.SQLITE_BUSY || se.Code()&0xff == sqlite3lib.SQLITE_LOCKED)
}
