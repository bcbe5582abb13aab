// Package sqlite is Baton's embedded store: one SQLite file (WAL mode) that
// several baton processes on one machine share. It needs nothing installed.
//
// SQLite cannot push, so each Store runs one watcher that checks
// PRAGMA data_version every few milliseconds (a read of a shared-memory
// counter, no I/O) and, when another connection has committed, reads the
// rows of the changes log written since its last look: which topics changed
// and how (watch.go). Writes made through this Store are signalled at once,
// without waiting for the watcher.
package sqlite

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/proposers"
	"github.com/baton-pub/baton/internal/recentlock"
	"github.com/baton-pub/baton/internal/signal"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

//go:embed schema.sql
var schema string

// Schema is the DDL of the store's tables and indexes. The bench builds its
// raw-insert ceiling on it, so that the ceiling pays for the same indexes.
func Schema() string { return schema }

var _ baton.Store = (*Store)(nil)

// Options tune a Store. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	Clock  baton.Clock
	// Poll is how often the watcher checks for changes made by other
	// processes. Default 2ms; after a second with no change from another
	// process it backs off to ten times that (see watcher.run).
	Poll time.Duration
	// Sync is the SQLite synchronous level: "full" (default: an
	// acknowledged item survives power loss) or "normal" (survives a process
	// crash, not power loss).
	Sync string
	// BusyTimeout bounds the wait for another process's write lock.
	BusyTimeout time.Duration
	// FenceAfter is how long a write waits for the file's write lock before
	// the store kills the holder if that process is stopped (see fence.go).
	// Default 1s; negative disables fencing.
	FenceAfter time.Duration
}

// Store is the SQLite engine.
type Store struct {
	path  string
	opts  Options
	log   *slog.Logger
	clock baton.Clock

	wdb *sql.DB // one connection: writes are serialised in-process
	ldb *sql.DB // one connection for lease writes, see writeLease
	ndb *sql.DB // one connection for node lease renewals, see writeNode
	rdb *reader // readers (WAL lets them run beside the writer)

	sig   *signal.Hub
	locks recentlock.Locks // holders named by the changes, see recentlock.go
	// leases batches the lease writes (leasebatch.go).
	prio   *renewals    // renewals first (priority.go); nil if not supported
	bell   *bell        // wakes the other processes' watchers (bell.go); nil if not supported
	leases leaseBatcher // lease writes, on ldb
	batch  leaseBatcher // the other fenced writes, on wdb
	// origin tags the rows this Store writes to the changes log, which its
	// own watcher skips (finish signals them at once); prunedAt is the id
	// at which it last pruned the log (see logChanges).
	origin   int64
	prunedAt atomic.Int64
	w        *watcher
	hot      map[*sql.DB]*prepared // see stmts.go

	cancel context.CancelFunc
	wg     sync.WaitGroup

	closed    atomic.Bool
	writes    writesInFlight     // see fence.go
	appends   appendGroup        // see group.go
	fused     proposers.Registry // publishing on append, fused.go
	closeOnce sync.Once
	closeErr  error
}

// Schemes are the URL schemes this engine opens.
var Schemes = []string{"sqlite"}

// Redact returns raw as it may be shown in logs, status and errors. A SQLite
// URL holds no secret (ParseURL refuses user info), so a URL ParseURL
// accepts is shown whole; any other is hidden but for its scheme.
func Redact(raw string) string {
	if _, err := ParseURL(raw, &Options{}); err != nil {
		return "sqlite://(unparsable URL hidden)"
	}
	return raw
}

// ParseURL turns a store URL into a file path:
// sqlite:///abs/path.db, sqlite://rel/path.db or a plain path.
// Query parameters (poll, sync, busy_timeout) fill opts.
func ParseURL(raw string, opts *Options) (string, error) {
	if !strings.Contains(raw, "://") {
		if raw == "" {
			return "", baton.Invalidf("store", "empty sqlite path")
		}
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Not %v of err: url.Error repeats the whole URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", baton.Invalidf("store", "bad sqlite URL: %v", err)
	}
	if u.Scheme != "sqlite" {
		return "", baton.Invalidf("store", "scheme %q is not sqlite", u.Scheme)
	}
	if u.User != nil {
		return "", baton.Invalidf("store", "sqlite URL takes no user info")
	}
	path := u.Host + u.Path // sqlite://rel/x.db -> host "rel", path "/x.db"
	if u.Host == "" {
		path = u.Path
	}
	if path == "" || strings.HasSuffix(path, "/") {
		return "", baton.Invalidf("store", "sqlite URL %q names no file", raw)
	}
	q := u.Query()
	for k, v := range q {
		switch k {
		case "fence":
			if v[0] != "off" && v[0] != "stopped" {
				return "", baton.Invalidf("store", "fence=%q: want stopped or off", v[0])
			}
			if v[0] == "off" {
				opts.FenceAfter = -1
			}
		case "fence_after":
			d, err := time.ParseDuration(v[0])
			if err != nil || d <= 0 {
				return "", baton.Invalidf("store", "%s=%q is not a positive duration", k, v[0])
			}
			opts.FenceAfter = d
		case "poll", "busy_timeout":
			d, err := time.ParseDuration(v[0])
			if err != nil || d <= 0 {
				return "", baton.Invalidf("store", "%s=%q is not a positive duration", k, v[0])
			}
			if k == "poll" {
				opts.Poll = d
			} else {
				opts.BusyTimeout = d
			}
		case "sync":
			if v[0] != "full" && v[0] != "normal" {
				return "", baton.Invalidf("store", "sync=%q: want full or normal", v[0])
			}
			opts.Sync = v[0]
		default:
			return "", baton.Invalidf("store", "unknown sqlite URL parameter %q", k)
		}
	}
	return path, nil
}

// Open opens (creating if needed) the store at rawURL.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	path, err := ParseURL(rawURL, &opts)
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = baton.SystemClock{}
	}
	if opts.Poll <= 0 {
		opts.Poll = 2 * time.Millisecond
	}
	if opts.Sync == "" {
		opts.Sync = "full"
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.FenceAfter == 0 {
		opts.FenceAfter = time.Second
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
	}
	s := &Store{path: path, opts: opts, log: opts.Logger, clock: opts.Clock, sig: signal.NewHub(), origin: rand.Int64()}
	s.leases.s, s.batch.s = s, s
	pragmas := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(%s)&_pragma=foreign_keys(off)",
		opts.BusyTimeout.Milliseconds(), opts.Sync)
	dsn := "file:" + path + "?" + pragmas
	// Writers wait for the file's write lock by polling it themselves
	// (begin), not in SQLite's busy handler: no busy timeout on their
	// connections.
	wdsn := "file:" + path + "?" + fmt.Sprintf("_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)&_pragma=synchronous(%s)&_pragma=foreign_keys(off)", opts.Sync)
	s.wdb, err = sql.Open("sqlite", wdsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetConnMaxIdleTime(0)
	// Lease writes have a connection of their own (see writeLease).
	s.ldb, err = sql.Open("sqlite", wdsn+"&_txlock=immediate")
	if err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s.ldb.SetMaxOpenConns(1)
	s.ldb.SetConnMaxIdleTime(0)
	// So have node lease renewals (see writeNode).
	s.ndb, err = sql.Open("sqlite", wdsn+"&_txlock=immediate")
	if err != nil {
		s.wdb.Close()
		s.ldb.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s.ndb.SetMaxOpenConns(1)
	s.ndb.SetConnMaxIdleTime(0)
	rdb, err := sql.Open("sqlite", dsn+"&_pragma=query_only(1)")
	s.rdb = &reader{DB: rdb}
	if err != nil {
		s.wdb.Close()
		s.ldb.Close()
		s.ndb.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s.rdb.SetMaxOpenConns(8)
	s.rdb.SetMaxIdleConns(8)
	s.leases.db, s.leases.spin, s.leases.maxSpin, s.leases.max = s.ldb, 100*time.Microsecond, 2*time.Millisecond, maxLeaseBatch
	s.batch.db, s.batch.spin, s.batch.maxSpin, s.batch.max = s.wdb, 200*time.Microsecond, 4*time.Millisecond, maxWriteBatch
	if s.prio, err = openRenewals(path); err != nil {
		s.log.Debug("renewals compete for the write lock like any write", "err", err)
		s.prio = nil
	}
	if !bellOn {
		s.bell = nil
	} else if s.bell, err = openBell(path); err != nil {
		s.log.Debug("no bell: watchers find changes by polling alone", "err", err)
		s.bell = nil
	}

	// The watchdog runs from the start: even creating the schema may wait
	// behind a stopped writer.
	wctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.watchdog(wctx) }()
	fail := func(err error) (*Store, error) {
		cancel()
		s.wg.Wait()
		s.rdb.Close()
		s.wdb.Close()
		s.ldb.Close()
		s.ndb.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		return fail(err)
	}
	if err := s.migrateLifecycle(ctx); err != nil {
		return fail(err)
	}
	if err := s.migrateReanchors(ctx); err != nil {
		return fail(err)
	}
	if err := s.migrateSnapshot(ctx); err != nil {
		return fail(err)
	}
	if err := s.migrateChangesHolder(ctx); err != nil {
		return fail(err)
	}
	hot := make(map[*sql.DB]*prepared, 4)
	for _, db := range []*sql.DB{s.wdb, s.ldb, s.ndb, s.rdb.DB} {
		qs := hotWrites
		if db == s.rdb.DB {
			qs = hotReads
		}
		p, err := prepareHot(ctx, db, qs)
		if err != nil {
			for _, p := range hot {
				p.close()
			}
			return fail(fmt.Errorf("open sqlite store %s: %w", s.path, err))
		}
		hot[db] = p
	}
	s.hot, s.rdb.hot = hot, hot[s.rdb.DB]
	if s.w, err = s.newWatcher(ctx); err != nil {
		return fail(err)
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.w.run(wctx) }()
	return s, nil
}

// schemaVersion is the schema's version, kept in PRAGMA user_version.
// Version 1 (user_version 0, the tables present) had a lease per topic;
// version 2 holds topic leases under node leases (nodes, topics.node_epoch)
// and logs changes for the watchers (changes).
const schemaVersion = 2

// migrate creates the schema in a new file and brings a version 1 file to
// version 2: its topic leases, held under no node lease, read as lapsed and
// get their expired records from the next Acquire or Expire. A file of a
// newer version is refused (docs/operations.md, SQLite specifics).
func (s *Store) migrate(ctx context.Context) error {
	// Most starts find the schema there: check without taking the write lock.
	var v int
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err == nil && v == schemaVersion {
		return nil
	}
	// Several processes may start at once on a new file: the immediate
	// transaction serialises them; CREATE ... IF NOT EXISTS makes it idempotent.
	defer s.beginWrite()()
	tx, err := s.begin(ctx, s.wdb, 200*time.Microsecond, 4*time.Millisecond)
	if err != nil {
		return fmt.Errorf("open sqlite store %s: %w", s.path, err)
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version of %s: %w", s.path, wrapErr(err))
	}
	switch {
	case v == schemaVersion:
		return nil
	case v > schemaVersion:
		return fmt.Errorf("open sqlite store %s: schema version %d is newer than this baton's %d: upgrade baton", s.path, v, schemaVersion)
	}
	var old int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'topics'`).Scan(&old); err != nil {
		return fmt.Errorf("read schema of %s: %w", s.path, wrapErr(err))
	}
	if old == 1 {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE topics ADD COLUMN node_epoch INTEGER NOT NULL DEFAULT 0`); err != nil {
			return fmt.Errorf("migrate schema of %s to version %d: %w", s.path, schemaVersion, wrapErr(err))
		}
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema in %s: %w", s.path, wrapErr(err))
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("create schema in %s: %w", s.path, wrapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema in %s: %w", s.path, wrapErr(err))
	}
	if old == 1 {
		s.log.Info("sqlite store migrated", "path", s.path, "from", 1, "to", schemaVersion)
	}
	return nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Ping checks that the file can be read.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("ping sqlite store: %w", baton.ErrClosed)
	}
	var n int
	if err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		return fmt.Errorf("ping sqlite store: %w", wrapErr(err))
	}
	return nil
}

// Close stops the watcher and closes the database. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.cancel()
		s.wg.Wait()
		s.sig.Close()
		for _, p := range s.hot {
			p.close()
		}
		s.closeErr = errors.Join(s.rdb.Close(), s.wdb.Close(), s.ldb.Close(), s.ndb.Close())
		if s.prio != nil {
			s.closeErr = errors.Join(s.closeErr, s.prio.close())
		}
		if s.bell != nil {
			s.closeErr = errors.Join(s.closeErr, s.bell.close())
		}
	})
	return s.closeErr
}

// Subscribe implements baton.Notifier.
func (s *Store) Subscribe(topic string, signals baton.Signal) baton.Subscription {
	return s.sig.Subscribe(topic, signals)
}

// SubscribeFunc implements baton.Notifier.
func (s *Store) SubscribeFunc(topic string, signals baton.Signal, fn func(baton.Signal)) baton.Subscription {
	return s.sig.SubscribeFunc(topic, signals, fn)
}

func (s *Store) now() time.Time { return s.clock.Now() }

// wrapErr maps driver errors onto baton's sentinels.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_LOCKED, sqlite3lib.SQLITE_CANTOPEN,
			sqlite3lib.SQLITE_IOERR, sqlite3lib.SQLITE_FULL, sqlite3lib.SQLITE_READONLY:
			return fmt.Errorf("%w: %v", baton.ErrUnavailable, err)
		}
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", baton.ErrUnavailable, err)
	}
	return err
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func hashFrom(b []byte) baton.Hash {
	var h baton.Hash
	copy(h[:], b)
	return h
}

func hashBytes(h baton.Hash) []byte {
	if h.IsZero() {
		return nil
	}
	b := make([]byte, len(h))
	copy(b, h[:])
	return b
}
