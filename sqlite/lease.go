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
// expire), on a connection of their own that polls for the file's write
// lock every few hundred microseconds instead of waiting in SQLite's busy
// handler. That handler sleeps 1, 2, 5, ... up to 100 ms between tries,
// and under sustained appends from several processes the lock is seldom
// free when it wakes: a renewal could wait past its lease's trust window
// and the holder step down with no fault at all (a spurious hand-over).
// Lease writes are tiny and few, and they are what keeps publishing
// alive, so they get the lock first.
func (s *Store) writeLease(ctx context.Context, topic string, fn func(tx *sql.Tx) (baton.Signal, error)) error {
	defer s.beginWrite()()
	// As long as the busy timeout at most, like every other write.
	deadline := time.NewTimer(s.opts.BusyTimeout)
	defer deadline.Stop()
	wait := 100 * time.Microsecond
	for {
		tx, err := s.ldb.BeginTx(ctx, nil)
		if err == nil {
			return s.finish(tx, topic, fn)
		}
		if !isBusy(err) {
			return wrapErr(err)
		}
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: waiting for the write lock: %v", baton.ErrUnavailable, ctx.Err())
		case <-deadline.C:
			t.Stop()
			return fmt.Errorf("%w: waiting for the write lock: %v", baton.ErrUnavailable, err)
		case <-t.C:
		}
		wait = min(wait*2, 2*time.Millisecond)
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
