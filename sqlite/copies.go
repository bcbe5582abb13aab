package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton/ledger"
)

// The node's copies of the topics' ledgers (ledger.Copies) in one SQLite
// file per node, apart from the store's file and schema.
//
// Append is write-behind: it checks that the append follows on from the
// topic's leaves and nodes, stored and pending (the stored sizes cached
// per topic, read from the file at the topic's first Append), copies it
// into the topic's pending appends and returns; reads see it there. A
// flush stores every topic's pending appends in one transaction, a
// savepoint each: copyFlushDelay after the first pending append (the
// flusher goroutine's timer), by the Append that passes copyFlushBytes
// (in its caller: the backpressure on writers faster than the file), with
// every
// write of the group commit (a SaveState's, a Reset's) and at Close. A node
// mirrors every item of every topic it follows; a transaction per Append
// (~66 µs fixed, and a growing chunk row rewriting its overflow pages at
// each append) cost the ingest 12-20% against per-topic files. A flush
// that fails keeps the appends pending, and the topic's next Append or
// SaveState reports its error (an Append reporting it stores nothing);
// past copyPendingBytes pending, Append refuses.
//
// Reset and SaveState (and flushes) are group-committed on the one writer
// connection: the writes waiting while a transaction commits (maxCopyBatch
// at most) are committed together in the next, with the pending appends,
// each in a savepoint of its own, so that a refused write rolls back alone
// and the others commit. A write that finds no transaction under way is
// committed at once, in its caller's goroutine (see write).
//
// Durability: the writer connection runs synchronous=NORMAL, under which a
// WAL commit survives a crash of the process, not of the machine; the
// appends still pending (100 ms' worth at most, unless flushes fail) do
// not survive either. A batch that carries a SaveState flushes every
// pending append in its transaction (the SaveState fails if one cannot be
// stored) and is committed with synchronous=FULL, which fsyncs the WAL at
// the commit; the WAL keeps the order of commits, so the fsync also makes
// every earlier commit survive: so do the state and every Append that
// returned before it, which is what ledger.Copies promises.
//
// Reads use a pool of their own (query_only connections): in WAL mode they
// read the last commit without waiting for the writer.
//
// More than one Copies may be open on one file (in this process or
// others): SQLite's write lock serialises their transactions, and a
// flush's check that a topic's appends follow on is made inside its
// transaction, so neither can break the other's copy; but each checks
// Append against its own cached sizes, so an append the other handle made
// first is refused at the flush (ErrCopyGap, reported by the topic's next
// call; its pending appends dropped, its sizes read again). Size reads the
// stored size from the file and drops the cached sizes if they differ
// (nothing pending). One Copies per file is the intended use.

// The copies' layout. A topic's leaves and the hashes of each level of its
// tree are packed in chunks, rows of consecutive values: leaves seq
// chunk*copyLeafChunk+1 .. in a copy_leaves row (each encoding prefixed
// with its length, a uvarint; n counts them), the hashes of indexes
// chunk*copyNodeChunk .. of a level in a copy_nodes row (32 bytes each,
// concatenated). An append extends the last chunk in SQL (the row is not
// read into Go) and starts the next ones: it writes a row per chunk it
// touches, not three per leaf (a leaf's, its hash's and, on average, a
// parent's), which had a node spend about 11 µs of CPU a leaf mirrored.
//
// Chunks are filled in order: a topic's leaf chunks, and each level's node
// chunks, are 0..k, all full but the last. The statements that extend a
// chunk check its count (an UPDATE ... WHERE n = count), and those that
// start one check that it is new and that the one before is full: so an
// append that does not follow on changes no row, and is refused
// (ErrCopyGap) with nothing of it stored.
//
// copy_leaves and copy_nodes are rowid tables, their primary keys an index:
// WITHOUT ROWID, a chunk (kilobytes, past a page) is in its key's B-tree,
// interior pages included, and every search compared whole chunks read
// from their overflow pages (append cost half again as much). copy_states
// is WITHOUT ROWID: its rows are small.
const copiesSchema = `
CREATE TABLE IF NOT EXISTS copy_leaves (
	topic TEXT NOT NULL,
	chunk INTEGER NOT NULL,
	n     INTEGER NOT NULL,
	encs  BLOB NOT NULL,
	PRIMARY KEY (topic, chunk)
);
CREATE TABLE IF NOT EXISTS copy_nodes (
	topic  TEXT NOT NULL,
	level  INTEGER NOT NULL,
	chunk  INTEGER NOT NULL,
	hashes BLOB NOT NULL,
	PRIMARY KEY (topic, level, chunk)
);
CREATE TABLE IF NOT EXISTS copy_states (
	topic TEXT NOT NULL PRIMARY KEY,
	state BLOB
) WITHOUT ROWID;
`

// copiesLayout is the layout's version, kept in the file's user_version:
// 0 is the first (a row per leaf and per node, in tables of the same
// names). A file of an older layout has its leaves and nodes dropped at
// open (a copy is rebuilt from the store: the witness finds it shorter
// than the checkpoint it accepted), its states kept. Chunk sizes are part
// of the layout: changing one is a new version.
const copiesLayout = 1

var _ ledger.Copies = (*Copies)(nil)

// CopiesOptions tune OpenCopies. The zero value is usable.
type CopiesOptions struct {
	Logger *slog.Logger
	// BusyTimeout bounds the wait for the file's write lock when another
	// handle holds it (default 10s).
	BusyTimeout time.Duration
	// Readers is the size of the readers' pool (default 4).
	Readers int
}

// Copies is the SQLite engine of ledger.Copies: every topic's copy in one
// file. Its methods may be called from any goroutine.
type Copies struct {
	path string
	log  *slog.Logger

	wdb   *sql.DB    // one connection, the writer's
	wconn *sql.Conn  // that connection, held for life, used by the leader
	w     copyWriter // the leader's
	rdb   *sql.DB    // the readers
	rst   [crCount]*sql.Stmt

	// closed is set once Close began: reads check it without a lock.
	closed atomic.Bool

	// mu guards the queue of writes and the lead (see write); idle is
	// signalled when nobody leads any more.
	mu      sync.Mutex
	idle    sync.Cond
	pending []*copyWrite
	spare   []*copyWrite // the slice of the last batch, for the next queue
	leading bool
	handed  bool // the lead is handed to pending[0]
	current int  // the writes of the batch under way (for tests)
	ending  bool // Close began: no write is queued any more

	// For tests: transactions committed, and those committed durably.
	txs, durableTxs atomic.Int64

	// The write-behind buffer (see Append). dmu guards topics, dirty,
	// pendBytes, dclosed and warned; the leader takes it briefly before
	// and after a transaction, never across one.
	dmu       sync.Mutex
	topics    map[string]*copyTopic
	dirty     []*copyTopic // the topics with pending data
	pendBytes int          // the pending data's bytes, all topics
	dclosed   bool         // Close began: no Append is buffered any more
	warned    bool         // a failed flush was logged, none succeeded since

	// The flusher goroutine: arm starts its timer (the first pending
	// append), kick flushes at once (the pending bytes passed
	// copyFlushBytes); stop ends it, and it closes flusherDone.
	arm, kick, stop chan struct{}
	flusherDone     chan struct{}
	flushDelay      atomic.Int64 // a time.Duration (tests change it)
	// failFlush, if set (tests), fails a flush's transaction before it
	// begins.
	failFlush atomic.Pointer[func() error]

	closeOnce sync.Once
	closeErr  error
}

// OpenCopies opens (creating it and its directory if needed) the copies
// file at path. It starts one goroutine, the flusher (Close ends it):
// writes are otherwise committed by their callers (see write).
func OpenCopies(path string, opts CopiesOptions) (*Copies, error) {
	if path == "" {
		return nil, errors.New("open ledger copies: empty path")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if opts.Readers <= 0 {
		opts.Readers = 4
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open ledger copies %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("open ledger copies %s: %w", path, err)
	}
	// Create the file here, not in SQLite, for its mode: SQLite would make
	// it 0644, and gives its -wal and -shm files the database file's mode.
	// A file there already keeps its own.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open ledger copies %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open ledger copies %s: %w", path, err)
	}

	c := &Copies{path: path, log: opts.Logger, topics: make(map[string]*copyTopic),
		arm: make(chan struct{}, 1), kick: make(chan struct{}, 1), stop: make(chan struct{}), flusherDone: make(chan struct{})}
	c.flushDelay.Store(int64(copyFlushDelay))
	c.idle.L = &c.mu
	// A URI, so that SQLite applies no meaning of its own to the path's
	// characters: the ones URIs give one are escaped.
	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(abs))
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", opts.BusyTimeout.Milliseconds())
	// The writer's settings (each measured with BenchmarkCopiesAppend):
	// temp_store(MEMORY): a multi-row INSERT and a savepoint keep the
	// pages they change in a statement journal, a temporary file past
	// 64 KiB otherwise (a write syscall per page). wal_autocheckpoint and
	// cache_size: the writes of many topics touch pages all over the file
	// (the end of each topic's leaves, and of each level of its tree);
	// checkpoints that copy the WAL to the file at 1,000 pages (SQLite's
	// default) and a 2 MiB page cache made a thousand topics' appends half
	// again as costly: the WAL now grows to about 40 MiB between
	// checkpoints, and the cache to 32 MiB.
	c.wdb, err = sql.Open("sqlite", uri+"?"+busy+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"+
		"&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(10000)&_pragma=cache_size(-32768)")
	if err != nil {
		return nil, fmt.Errorf("open ledger copies %s: %w", path, err)
	}
	c.wdb.SetMaxOpenConns(1)
	c.wdb.SetMaxIdleConns(1)
	c.wdb.SetConnMaxIdleTime(0)
	c.wdb.SetConnMaxLifetime(0)
	c.rdb, err = sql.Open("sqlite", uri+"?"+busy+"&_pragma=query_only(1)")
	if err != nil {
		c.wdb.Close()
		return nil, fmt.Errorf("open ledger copies %s: %w", path, err)
	}
	c.rdb.SetMaxOpenConns(opts.Readers)
	c.rdb.SetMaxIdleConns(opts.Readers)
	if err := c.open(); err != nil {
		return nil, errors.Join(fmt.Errorf("open ledger copies %s: %w", path, err), c.release())
	}
	go c.flusher()
	c.log.Debug("ledger copies open", "path", path)
	return c, nil
}

// open creates the schema, takes the writer's connection and prepares the
// statements.
func (c *Copies) open() error {
	ctx := context.Background()
	var err error
	if c.wconn, err = c.wdb.Conn(ctx); err != nil {
		return fmt.Errorf("writer connection: %w", err)
	}
	// The writer connects first and sets WAL mode (which the file keeps),
	// so the readers, opened after, find it.
	var mode string
	if err := c.wconn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		// Without WAL, readers would wait for the writer, and
		// synchronous=NORMAL would not keep what it does.
		return fmt.Errorf("journal mode is %s, not WAL (a file system without shared memory?)", mode)
	}
	if err := c.migrate(ctx); err != nil {
		return err
	}
	if err := c.wconn.Raw(c.w.prepare); err != nil {
		return err
	}
	for i, q := range copyReaderSQL {
		if c.rst[i], err = c.rdb.PrepareContext(ctx, q); err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	return nil
}

// migrate creates the schema, or brings the file's to copiesLayout: the
// leaves and nodes of an older layout are dropped (the witness rebuilds
// them from the store), the states kept. In a transaction of its own, so
// that handles opening the file at once do it once.
func (c *Copies) migrate(ctx context.Context) (err error) {
	if _, err := c.wconn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = c.wconn.ExecContext(ctx, `ROLLBACK`) // failed already
		}
	}()
	var version int
	if err := c.wconn.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read layout version: %w", err)
	}
	if version > copiesLayout {
		return fmt.Errorf("the file's layout is version %d, newer than this program's (%d)", version, copiesLayout)
	}
	if version < copiesLayout {
		var old int
		if err := c.wconn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('copy_leaves', 'copy_nodes')`).Scan(&old); err != nil {
			return fmt.Errorf("read schema: %w", err)
		}
		if old > 0 {
			if _, err := c.wconn.ExecContext(ctx, `DROP TABLE IF EXISTS copy_leaves; DROP TABLE IF EXISTS copy_nodes`); err != nil {
				return fmt.Errorf("drop the copies of layout %d: %w", version, err)
			}
			c.log.Info("ledger copies: dropped the leaves and nodes of an older layout; the witness rebuilds them from the store",
				"path", c.path, "layout", version, "new_layout", copiesLayout)
		}
		if _, err := c.wconn.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, copiesLayout)); err != nil {
			return fmt.Errorf("set layout version: %w", err)
		}
	}
	if _, err := c.wconn.ExecContext(ctx, copiesSchema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if _, err := c.wconn.ExecContext(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	return nil
}

// release closes the statements, the writer's connection and the pools.
func (c *Copies) release() error {
	var errs []error
	for _, st := range c.rst {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if c.wconn != nil {
		errs = append(errs, c.wconn.Raw(func(any) error { return c.w.close() }), c.wconn.Close())
	}
	errs = append(errs, c.wdb.Close(), c.rdb.Close())
	return errors.Join(errs...)
}

// Close flushes the pending appends (after the batch being committed,
// which it waits for; the writes queued commit with the flush), stops the
// flusher and closes the file. Writes queued after the flush fail with
// ErrCopiesClosed, and so does every call after Close; an Append that
// returned nil before Close is stored, or Close's error says it is not.
// It is idempotent.
func (c *Copies) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.dmu.Lock()
		c.dclosed = true // the Appends buffered are all flushed below
		c.dmu.Unlock()
		close(c.stop)
		<-c.flusherDone
		var errs []error
		if err := c.flush(); err != nil {
			errs = append(errs, err)
		}
		c.mu.Lock()
		c.ending = true
		// A write handed the lead commits itself (Close waits for it):
		// its done holds the lead already.
		left := c.pending
		if c.handed {
			left, c.pending = left[1:], left[:1]
		} else {
			c.pending = nil
		}
		for _, w := range left {
			w.done <- w.fail(ledger.ErrCopiesClosed)
		}
		for c.leading {
			c.idle.Wait()
		}
		c.mu.Unlock()
		if err := c.release(); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			c.closeErr = fmt.Errorf("close ledger copies %s: %w", c.path, err)
		}
	})
	return c.closeErr
}

// Path is the copies' file.
func (c *Copies) Path() string { return c.path }
