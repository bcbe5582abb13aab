package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/baton-pub/baton"
)

// watcher turns commits by other connections (other processes) into
// signals. Every signalling write logs its changes (topic, signals) in the
// changes table in its own transaction (finish); the watcher reads the rows
// after the last id it saw, through the primary key: its cost follows the
// changes, not the number of topics. A commit that logs nothing (a node
// lease renewal, a heartbeat) costs it one data_version read and one empty
// range read.
type watcher struct {
	s    *Store
	conn *sql.Conn
	// The two statements it runs every poll, prepared once: modernc's
	// SQLite parses every statement it is handed.
	version, read *sql.Stmt
	ver           int64
	last          int64 // id of the last change read
}

// watchBatch bounds the rows one read takes; the watcher reads on until
// it has caught up.
const watchBatch = 1000

func (s *Store) newWatcher(ctx context.Context) (*watcher, error) {
	conn, err := s.rdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open sqlite watcher: %w", wrapErr(err))
	}
	w := &watcher{s: s, conn: conn}
	fail := func(err error) (*watcher, error) {
		w.close()
		return nil, fmt.Errorf("open sqlite watcher: %w", wrapErr(err))
	}
	if w.version, err = conn.PrepareContext(ctx, "PRAGMA data_version"); err != nil {
		return fail(err)
	}
	if w.read, err = conn.PrepareContext(ctx, `SELECT id, topic, signals, origin, holder, epoch FROM changes WHERE id > ? ORDER BY id LIMIT ?`); err != nil {
		return fail(err)
	}
	if err := w.version.QueryRowContext(ctx).Scan(&w.ver); err != nil {
		return fail(err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM changes`).Scan(&w.last); err != nil {
		return fail(err)
	}
	return w, nil
}

func (w *watcher) close() {
	for _, st := range []*sql.Stmt{w.version, w.read} {
		if st != nil {
			st.Close()
		}
	}
	w.conn.Close()
}

// quietAfter is how long without a change from another process before
// the watcher polls less often: it backs off from Options.Poll to
// quietPolls times it (2 ms to 20 ms by default), so that an idle store
// costs its processes little, and a busy one keeps its signals prompt.
const (
	quietAfter = time.Second
	quietPolls = 10
)

func (w *watcher) run(ctx context.Context) {
	defer w.close()
	every := w.s.opts.Poll
	// A ticker, not a timer re-armed after each poll: polls stay every
	// apart, so a change waits half of every on average. Re-armed after
	// each poll, the period grew by the poll and by the goroutine's late
	// wake-up (a few hundred microseconds on a loaded machine, a sixth of
	// the 2 ms), on each of the two hops an item takes between processes
	// (BenchmarkWatchHop, docs/benchmarks.md).
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	// With a bell, a ring wakes the watcher at once and the ticker is the
	// fallback: it slows down to bellQuietPoll (bell.go).
	var rung <-chan struct{}
	quiet := quietPolls * w.s.opts.Poll
	if w.s.bell != nil {
		rung = w.s.bell.heard()
		quiet = max(quiet, bellQuietPoll)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-rung:
		}
		seen, err := w.poll(ctx)
		if err != nil && ctx.Err() == nil {
			w.s.log.Warn("sqlite watcher", "err", err)
		}
		next := every
		switch {
		case seen:
			last, next = time.Now(), w.s.opts.Poll
		case time.Since(last) > quietAfter:
			next = min(every*2, quiet)
		}
		if next != every {
			every = next
			t.Reset(every)
		}
	}
}

// poll signals the changes other processes logged since the last poll.
// Rows this Store wrote are skipped: it signalled them when it wrote them.
// If rows it had not read were pruned (ids are contiguous, and the newest
// row is never pruned: a gap is rows missed), it wakes every subscription,
// as a lost notification must (wake-ups are hints).
// It reports whether it signalled anything.
func (w *watcher) poll(ctx context.Context) (bool, error) {
	var ver int64
	if err := w.version.QueryRowContext(ctx).Scan(&ver); err != nil {
		return false, err
	}
	if ver == w.ver {
		return false, nil
	}
	seen := false
	for {
		n, signalled, err := w.readChanges(ctx)
		seen = seen || signalled
		if err != nil {
			return seen, err // data_version is not moved on: the next poll retries
		}
		if n < watchBatch {
			break
		}
	}
	w.ver = ver
	return seen, nil
}

// readChanges reads and signals up to watchBatch changes after w.last and
// returns how many it read, and whether it signalled any.
func (w *watcher) readChanges(ctx context.Context) (int, bool, error) {
	rows, err := w.read.QueryContext(ctx, w.last, watchBatch)
	if err != nil {
		return 0, false, fmt.Errorf("read changes: %w", wrapErr(err))
	}
	defer rows.Close()
	n, signalled := 0, false
	for rows.Next() {
		var id, sig, origin, epoch int64
		var topic, holder string
		if err := rows.Scan(&id, &topic, &sig, &origin, &holder, &epoch); err != nil {
			return n, signalled, fmt.Errorf("read changes: %w", err)
		}
		if n == 0 && id != w.last+1 {
			w.s.log.Debug("sqlite watcher fell behind the changes log: waking every subscription", "last", w.last, "next", id)
			w.s.locks.Reset()
			w.s.sig.NotifyAll()
		}
		if origin != w.s.origin {
			w.s.heardLock(topic, baton.Signal(sig), holder, uint64(epoch))
			w.s.sig.Notify(topic, baton.Signal(sig))
			signalled = true
		}
		w.last = id
		n++
	}
	return n, signalled, rows.Err()
}
