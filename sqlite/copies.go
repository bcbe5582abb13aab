package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
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
// Writes (Append, Reset, SaveState) are group-committed on the one writer
// connection: the writes waiting while a transaction commits (maxCopyBatch
// at most) are committed together in the next, each in a savepoint of its
// own, so that a refused write (ErrCopyGap) rolls back alone and the
// others commit. A node mirrors every item of every topic it follows; one
// transaction per leaf would spend most of its time in the commit (the
// WAL's frames, the locks), so concurrent mirrors share it. A write that
// finds no transaction under way is committed at once, in its caller's
// goroutine: nobody waits for a timer, or for a goroutine to wake (see
// write).
//
// Durability: the writer connection runs synchronous=NORMAL, under which a
// WAL commit survives a crash of the process, not of the machine. A batch
// that carries a SaveState is committed with synchronous=FULL, which
// fsyncs the WAL at the commit; the WAL keeps the order of commits, so the
// fsync also makes every earlier commit (the Appends that returned before
// it) survive, which is what ledger.Copies promises.
//
// Reads use a pool of their own (query_only connections): in WAL mode they
// read the last commit without waiting for the writer.
//
// More than one Copies may be open on one file (in this process or
// others): SQLite's write lock serialises their transactions, and Append's
// check that it follows on is made inside its transaction, so neither can
// break the other's copy. The writer's BEGIN IMMEDIATE waits for the lock
// up to CopiesOptions.BusyTimeout. One Copies per file is the intended use:
// two group commits contend for the lock.

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

// Chunk sizes. Measured with BenchmarkCopiesAppend: 32 and 64 cost the
// same (a commit's WAL frames are what counts); 64 makes fewer rows.
const (
	copyLeafChunk = 64
	copyNodeChunk = 64
	copyHashSize  = 32
)

// maxCopyBatch bounds the writes of one transaction, so that one commit
// does not hold the file's write lock, or its callers, for long.
const maxCopyBatch = 256

// maxNodesQuery is the most chunks one statement reads; nodesRows are the
// sizes prepared, a read padded to the next (by repeating its last chunk).
const maxNodesQuery = 128

var nodesRows = [...]int{1, 2, 4, 8, 16, 32, 64, 128}

// Statements. An id indexes copyWriter.st (the writer's) or Copies.rst
// (the readers').
const (
	// Writer statements.
	cwBegin = iota
	cwCommit
	cwRollback
	cwSize
	cwResetLeaves
	cwResetNodes
	cwPutState
	cwDropState
	cwSavepoint
	cwRollbackTo
	cwRelease
	cwLeavesExtend
	cwLeavesFirst
	cwLeavesNext
	cwNodesExtend
	cwNodesFirst
	cwNodesNext
	cwCount
)

const (
	// Reader statements.
	crSize = iota
	crEntry
	crState
	crNode
	crNodes // + i: nodesRows[i] chunks
	crCount = crNodes + len(nodesRows)
)

var copyWriterSQL = func() [cwCount]string {
	var q [cwCount]string
	q[cwBegin] = `BEGIN IMMEDIATE`
	q[cwCommit] = `COMMIT`
	q[cwRollback] = `ROLLBACK`
	q[cwSize] = `SELECT chunk, n FROM copy_leaves WHERE topic = ? ORDER BY chunk DESC LIMIT 1`
	q[cwResetLeaves] = `DELETE FROM copy_leaves WHERE topic = ?`
	q[cwResetNodes] = `DELETE FROM copy_nodes WHERE topic = ?`
	q[cwPutState] = `INSERT OR REPLACE INTO copy_states (topic, state) VALUES (?, ?)`
	q[cwDropState] = `DELETE FROM copy_states WHERE topic = ?`
	q[cwSavepoint] = `SAVEPOINT copy_write`
	q[cwRollbackTo] = `ROLLBACK TO copy_write`
	q[cwRelease] = `RELEASE copy_write`
	// Each changes one row, or none if the append does not follow on
	// (see copiesSchema). The CAST: || makes text of blobs (the bytes
	// unchanged), whose length() would count characters. Extend: the chunk holds count values. First: no
	// chunk 0 yet. Next: no chunk k yet, and chunk k-1 is full.
	q[cwLeavesExtend] = `UPDATE copy_leaves SET encs = CAST(encs || ? AS BLOB), n = n + ? WHERE topic = ? AND chunk = ? AND n = ?`
	q[cwLeavesFirst] = `INSERT INTO copy_leaves (topic, chunk, n, encs) VALUES (?, 0, ?, ?) ON CONFLICT DO NOTHING`
	q[cwLeavesNext] = `INSERT INTO copy_leaves (topic, chunk, n, encs) SELECT ?1, ?2, ?3, ?4
		WHERE (SELECT n FROM copy_leaves WHERE topic = ?1 AND chunk = ?2 - 1) = ` + fmt.Sprint(copyLeafChunk) + ` ON CONFLICT DO NOTHING`
	q[cwNodesExtend] = `UPDATE copy_nodes SET hashes = CAST(hashes || ? AS BLOB) WHERE topic = ? AND level = ? AND chunk = ? AND length(hashes) = ?`
	q[cwNodesFirst] = `INSERT INTO copy_nodes (topic, level, chunk, hashes) VALUES (?, ?, 0, ?) ON CONFLICT DO NOTHING`
	q[cwNodesNext] = `INSERT INTO copy_nodes (topic, level, chunk, hashes) SELECT ?1, ?2, ?3, ?4
		WHERE (SELECT length(hashes) FROM copy_nodes WHERE topic = ?1 AND level = ?2 AND chunk = ?3 - 1) = ` +
		fmt.Sprint(copyNodeChunk*copyHashSize) + ` ON CONFLICT DO NOTHING`
	return q
}()

var copyReaderSQL = func() [crCount]string {
	var q [crCount]string
	q[crSize] = `SELECT chunk, n FROM copy_leaves WHERE topic = ? ORDER BY chunk DESC LIMIT 1`
	q[crEntry] = `SELECT n, encs FROM copy_leaves WHERE topic = ? AND chunk = ?`
	q[crState] = `SELECT state FROM copy_states WHERE topic = ?`
	// One hash: cut from its chunk in SQL (empty past the chunk's end).
	q[crNode] = `SELECT substr(hashes, ?, ` + fmt.Sprint(copyHashSize) + `) FROM copy_nodes WHERE topic = ? AND level = ? AND chunk = ?`
	for i, n := range nodesRows {
		q[crNodes+i] = `SELECT level, chunk, hashes FROM copy_nodes WHERE topic = ? AND (level, chunk) IN (VALUES ` + rowsOf("(?, ?)", n) + `)`
	}
	return q
}()

// rowsOf is n copies of row, comma-separated. The parameters are
// anonymous: the driver looks a named or numbered one up by name, a cost
// that grows with the statement's parameters.
func rowsOf(row string, n int) string {
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

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

	closeOnce sync.Once
	closeErr  error
}

// OpenCopies opens (creating it and its directory if needed) the copies
// file at path. It starts no goroutine: writes are committed by their
// callers (see write).
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

	c := &Copies{path: path, log: opts.Logger}
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

// Close closes the file. The batch being committed commits (Close waits
// for it); the writes queued behind it fail with ErrCopiesClosed, and so
// does every call after Close. It is idempotent.
func (c *Copies) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
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
			c.closeErr = fmt.Errorf("close ledger copies %s: %w", c.path, err)
		}
	})
	return c.closeErr
}

// Path is the copies' file.
func (c *Copies) Path() string { return c.path }

// copyWrite is a write waiting for, or in, a batch.
type copyWrite struct {
	op    copyOp
	topic string
	first uint64
	encs  [][]byte
	nodes []ledger.Node
	state []byte
	done  chan error // one slot: the writer never blocks on it
}

type copyOp uint8

const (
	opAppend copyOp = iota
	opReset
	opSaveState
)

// fail wraps err as the error of w's operation on its topic.
func (w *copyWrite) fail(err error) error {
	switch w.op {
	case opAppend:
		return fmt.Errorf("ledger copies: append to %s: %w", w.topic, err)
	case opReset:
		return fmt.Errorf("ledger copies: reset %s: %w", w.topic, err)
	default:
		return fmt.Errorf("ledger copies: save state of %s: %w", w.topic, err)
	}
}

// errCopyLead, sent on a queued write's done, hands its caller the lead.
var errCopyLead = errors.New("ledger copies: lead the next batch")

// write commits w in a batch and returns its outcome.
//
// Writes are committed by their callers, leader and followers, with no
// goroutine of the Copies' own: a write that finds nobody leading leads
// (commits a batch) at once; one that finds a leader queues. The leader
// commits the writes queued (its own first, maxCopyBatch at most), then
// hands the lead to the oldest write still queued, whose caller commits
// the next batch, and returns. So nobody leads twice, a lone writer pays
// no hand-over between goroutines, and while a batch commits the next
// gathers.
func (c *Copies) write(w *copyWrite) error {
	w.done = make(chan error, 1)
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		return w.fail(ledger.ErrCopiesClosed)
	}
	c.pending = append(c.pending, w)
	if !c.leading {
		c.leading = true
		c.mu.Unlock()
		c.lead()
	} else {
		c.mu.Unlock()
	}
	for {
		err := <-w.done
		if err != errCopyLead {
			return err
		}
		c.lead()
	}
}

// lead commits the next batch, the leader's write first, and hands the
// lead on. It is called by the write at the head of the queue, with
// c.leading set.
func (c *Copies) lead() {
	c.mu.Lock()
	var batch []*copyWrite
	switch n := len(c.pending); {
	case n <= maxCopyBatch:
		// The whole queue: the slice of the last batch takes its place.
		batch, c.pending, c.spare = c.pending, c.spare[:0], nil
	default:
		batch = make([]*copyWrite, maxCopyBatch)
		copy(batch, c.pending)
		c.pending = append(c.pending[:0], c.pending[maxCopyBatch:]...)
	}
	c.current, c.handed = len(batch), false
	c.mu.Unlock()
	if len(batch) > 0 { // Close may have failed them all
		c.commit(batch)
	}
	clear(batch)
	c.mu.Lock()
	c.current = 0
	if c.spare == nil {
		c.spare = batch[:0]
	}
	if len(c.pending) > 0 {
		// Still leading: the lead goes to the oldest write queued, which
		// Close then leaves alone (done has one slot).
		c.pending[0].done <- errCopyLead
		c.handed = true
	} else {
		c.leading = false
		c.idle.Broadcast()
	}
	c.mu.Unlock()
}

// commit runs batch in one transaction and answers each write.
func (c *Copies) commit(batch []*copyWrite) {
	errs := make([]error, len(batch))
	var committed bool
	var txErr error
	durable := false
	for _, w := range batch {
		durable = durable || w.op == opSaveState
	}
	// The batch runs on the driver's connection itself. Through
	// database/sql, a transaction and each statement in it would start a
	// goroutine (to watch a context) and take its locks: a good part of
	// what a leaf's write costs, the rest being SQLite's own work.
	err := c.wconn.Raw(func(dc any) error {
		committed, txErr = c.w.commit(dc, batch, errs, durable)
		return nil
	})
	if err == nil {
		err = txErr
	}
	if err != nil {
		c.log.Warn("ledger copies: a batch failed", "path", c.path, "writes", len(batch), "err", err)
	}
	if committed {
		c.txs.Add(1)
		if durable {
			c.durableTxs.Add(1)
		}
	}
	for i, w := range batch {
		switch {
		case errs[i] != nil:
			w.done <- errs[i]
		case err != nil:
			w.done <- w.fail(err)
		default:
			w.done <- nil
		}
	}
}

// copyStmt is a statement prepared on the driver's connection.
type copyStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// copyWriter is the writer's connection seen through the driver: its
// statements and the buffers of their arguments. Only the leader uses it,
// inside the connection's Raw.
type copyWriter struct {
	st       [cwCount]copyStmt
	args     []driver.NamedValue
	dest     []driver.Value
	syncFull bool // the connection runs synchronous=FULL now
}

// prepare prepares the writer's statements on the driver's connection dc.
func (w *copyWriter) prepare(dc any) error {
	p, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return fmt.Errorf("the sqlite driver's connection %T does not prepare with a context", dc)
	}
	for i, q := range copyWriterSQL {
		st, err := p.PrepareContext(context.Background(), q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		cs, ok := st.(copyStmt)
		if !ok {
			st.Close()
			return fmt.Errorf("the sqlite driver's statement %T does not run with a context", st)
		}
		w.st[i] = cs
	}
	w.dest = make([]driver.Value, 2)
	return nil
}

// close closes the writer's statements (inside the connection's Raw).
func (w *copyWriter) close() error {
	var errs []error
	for i, st := range w.st {
		if st != nil {
			errs = append(errs, st.Close())
			w.st[i] = nil
		}
	}
	return errors.Join(errs...)
}

// arg adds an argument of the next statement.
func (w *copyWriter) arg(v driver.Value) {
	w.args = append(w.args, driver.NamedValue{Ordinal: len(w.args) + 1, Value: v})
}

// exec runs statement id with the arguments added since the last.
func (w *copyWriter) exec(id int) error {
	_, err := w.st[id].ExecContext(context.Background(), w.args)
	clear(w.args) // let the arguments' memory go
	w.args = w.args[:0]
	return err
}

// commit runs batch in one transaction and reports whether it committed.
// errs[i] is set to the error of batch[i]; the error returned is the
// transaction's, which fails every write of the batch not failed already.
// durable: commit with synchronous=FULL.
func (w *copyWriter) commit(dc any, batch []*copyWrite, errs []error, durable bool) (bool, error) {
	// synchronous is a setting of the connection, changed outside a
	// transaction: FULL for a batch that must be durable, back to NORMAL
	// for the next that need not.
	if durable && !w.syncFull {
		if err := setSynchronous(dc, "FULL"); err != nil {
			// Committed without it, a SaveState would not be durable.
			return false, err
		}
		w.syncFull = true
	}
	if !durable && w.syncFull {
		// If this fails, FULL stays: slower, as safe.
		if err := setSynchronous(dc, "NORMAL"); err == nil {
			w.syncFull = false
		}
	}
	if err := w.exec(cwBegin); err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	if len(batch) == 1 {
		// No savepoint: a lone write that fails rolls the transaction back.
		if errs[0] = w.apply(batch[0]); errs[0] != nil {
			_ = w.exec(cwRollback) // nothing of it is kept either way
			return false, nil
		}
	} else if err := w.run(batch, errs); err != nil {
		_ = w.exec(cwRollback) // the batch failed already
		return false, err
	}
	if err := w.exec(cwCommit); err != nil {
		// A COMMIT that failed may have left the transaction open.
		_ = w.exec(cwRollback) // the batch failed already
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}

// setSynchronous sets the synchronous level of the driver's connection dc.
// Not with a statement prepared once: SQLite applies PRAGMA synchronous
// when it prepares the statement, not when it runs it.
func setSynchronous(dc any, level string) error {
	ex, ok := dc.(driver.ExecerContext)
	if !ok {
		return fmt.Errorf("set synchronous: the sqlite driver's connection %T does not execute with a context", dc)
	}
	if _, err := ex.ExecContext(context.Background(), "PRAGMA synchronous = "+level, nil); err != nil {
		return fmt.Errorf("set synchronous to %s: %w", level, err)
	}
	return nil
}

// run runs the writes of batch, several, in the open transaction.
func (w *copyWriter) run(batch []*copyWrite, errs []error) error {
	for i, cw := range batch {
		// Each write in a savepoint: a failed one is rolled back alone. If
		// SQLite rolled back the whole transaction (as it may on an I/O
		// error or a full disk), ROLLBACK TO fails and so does the batch:
		// the writes after must not run outside it.
		if err := w.exec(cwSavepoint); err != nil {
			return fmt.Errorf("savepoint: %w", err)
		}
		if errs[i] = w.apply(cw); errs[i] != nil {
			if err := w.exec(cwRollbackTo); err != nil {
				return fmt.Errorf("roll back to savepoint: %w", err)
			}
		}
		if err := w.exec(cwRelease); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
	}
	return nil
}

// apply runs cw in the transaction; its error names cw's operation and
// topic.
func (w *copyWriter) apply(cw *copyWrite) error {
	var err error
	switch cw.op {
	case opAppend:
		err = w.append(cw)
	case opReset:
		w.arg(cw.topic)
		if err = w.exec(cwResetLeaves); err == nil {
			w.arg(cw.topic)
			err = w.exec(cwResetNodes)
		}
	case opSaveState:
		// A nil state is no state (State returns nil for it, as for a topic
		// never saved); an empty one is kept as an empty one.
		w.arg(cw.topic)
		if cw.state == nil {
			err = w.exec(cwDropState)
		} else {
			w.arg(cw.state)
			err = w.exec(cwPutState)
		}
	}
	if err != nil {
		return cw.fail(err)
	}
	return nil
}

// size reads the number of leaves stored for topic.
func (w *copyWriter) size(topic string) (uint64, error) {
	w.arg(topic)
	rows, err := w.st[cwSize].QueryContext(context.Background(), w.args)
	clear(w.args)
	w.args = w.args[:0]
	if err != nil {
		return 0, err
	}
	err = rows.Next(w.dest)
	if err == io.EOF { // no leaf
		err, w.dest[0], w.dest[1] = nil, nil, nil
	}
	// The statement holds its read of the table until reset, which Close
	// does.
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	chunk, _ := w.dest[0].(int64)
	n, _ := w.dest[1].(int64)
	clear(w.dest)
	return uint64(chunk)*copyLeafChunk + uint64(n), nil
}

// changed runs statement id with the arguments added since the last and
// reports whether it changed a row.
func (w *copyWriter) changed(id int) (bool, error) {
	res, err := w.st[id].ExecContext(context.Background(), w.args)
	clear(w.args)
	w.args = w.args[:0]
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// levelRun is the nodes of one level in an append: consecutive indexes
// from first, their hashes concatenated.
type levelRun struct {
	level  uint
	first  uint64
	hashes []byte
}

// levelRuns groups nodes by level, checking that each level's are
// consecutive (whether the first follows on from the stored ones is
// checked in SQL).
func levelRuns(nodes []ledger.Node) ([]levelRun, error) {
	var runs []levelRun
	last := -1 // the run of the previous node: most often the next's too
	for _, nd := range nodes {
		if len(nd.Hash) != copyHashSize {
			return nil, fmt.Errorf("node %d/%d: a hash of %d bytes, not %d", nd.Level, nd.Index, len(nd.Hash), copyHashSize)
		}
		r := -1
		if last >= 0 && runs[last].level == nd.Level {
			r = last
		} else {
			for i := range runs {
				if runs[i].level == nd.Level {
					r = i
					break
				}
			}
		}
		if r < 0 {
			runs = append(runs, levelRun{level: nd.Level, first: nd.Index, hashes: make([]byte, 0, copyHashSize*(len(nodes)>>nd.Level+1))})
			r = len(runs) - 1
		} else if next := runs[r].first + uint64(len(runs[r].hashes)/copyHashSize); nd.Index != next {
			return nil, fmt.Errorf("%w: node %d/%d, %d next at that level", ledger.ErrCopyGap, nd.Level, nd.Index, next)
		}
		runs[r].hashes = append(runs[r].hashes, nd.Hash...)
		last = r
	}
	return runs, nil
}

// append checks that cw follows on from the stored leaves and nodes and
// stores them: a statement per chunk touched (see copiesSchema).
func (w *copyWriter) append(cw *copyWrite) error {
	runs, err := levelRuns(cw.nodes)
	if err != nil {
		return err
	}
	if len(cw.encs) == 0 || cw.first == 0 {
		size, err := w.size(cw.topic)
		if err != nil {
			return err
		}
		if cw.first != size+1 {
			return fmt.Errorf("%w: first seq %d, %d stored", ledger.ErrCopyGap, cw.first, size)
		}
	}
	// Leaves: the first statement checks that they follow on.
	seq := cw.first - 1 // leaves stored before the next
	for rest := cw.encs; len(rest) > 0; {
		chunk, off := seq/copyLeafChunk, seq%copyLeafChunk
		n := min(uint64(len(rest)), copyLeafChunk-off)
		size := 0
		for _, e := range rest[:n] {
			size += binary.MaxVarintLen64 + len(e)
		}
		buf := make([]byte, 0, size)
		for _, e := range rest[:n] {
			buf = binary.AppendUvarint(buf, uint64(len(e)))
			buf = append(buf, e...)
		}
		var id int
		switch {
		case off > 0:
			id = cwLeavesExtend
			w.arg(buf)
			w.arg(int64(n))
			w.arg(cw.topic)
			w.arg(int64(chunk))
			w.arg(int64(off))
		case chunk == 0:
			id = cwLeavesFirst
			w.arg(cw.topic)
			w.arg(int64(n))
			w.arg(buf)
		default:
			id = cwLeavesNext
			w.arg(cw.topic)
			w.arg(int64(chunk))
			w.arg(int64(n))
			w.arg(buf)
		}
		ok, err := w.changed(id)
		if err != nil {
			return err
		}
		if !ok {
			// Only the first can fail so: the ones after start new chunks.
			size, err := w.size(cw.topic)
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: first seq %d, %d stored", ledger.ErrCopyGap, cw.first, size)
		}
		seq += n
		rest = rest[n:]
	}
	for _, r := range runs {
		index := r.first
		for rest := r.hashes; len(rest) > 0; {
			chunk, off := index/copyNodeChunk, index%copyNodeChunk
			n := min(uint64(len(rest)/copyHashSize), copyNodeChunk-off)
			part := rest[:n*copyHashSize]
			var id int
			switch {
			case off > 0:
				id = cwNodesExtend
				w.arg(part)
				w.arg(cw.topic)
				w.arg(int64(r.level))
				w.arg(int64(chunk))
				w.arg(int64(off * copyHashSize))
			case chunk == 0:
				id = cwNodesFirst
				w.arg(cw.topic)
				w.arg(int64(r.level))
				w.arg(part)
			default:
				id = cwNodesNext
				w.arg(cw.topic)
				w.arg(int64(r.level))
				w.arg(int64(chunk))
				w.arg(part)
			}
			ok, err := w.changed(id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: node %d/%d does not continue its level", ledger.ErrCopyGap, r.level, index)
			}
			index += n
			rest = rest[len(part):]
		}
	}
	return nil
}

// Append implements ledger.Copies. It returns once its batch committed
// (synchronous=NORMAL: it survives a crash of the process; the next
// SaveState makes it survive one of the machine).
func (c *Copies) Append(topic string, first uint64, encs [][]byte, nodes []ledger.Node) error {
	w := &copyWrite{op: opAppend, topic: topic, first: first, encs: encs, nodes: nodes}
	if c.closed.Load() {
		return w.fail(ledger.ErrCopiesClosed)
	}
	// SQLite's integers are signed: what does not fit is refused here.
	if first > math.MaxInt64 {
		return w.fail(fmt.Errorf("%w: first seq %d", ledger.ErrCopyGap, first))
	}
	if n := uint64(len(encs)); first > 0 && first-1 > math.MaxInt64-n {
		return w.fail(fmt.Errorf("%d leaves from seq %d: seqs out of range", n, first))
	}
	for _, nd := range nodes {
		if uint64(nd.Level) > math.MaxInt64 || nd.Index > math.MaxInt64 {
			return w.fail(fmt.Errorf("node %d/%d out of range", nd.Level, nd.Index))
		}
	}
	return c.write(w)
}

// Reset implements ledger.Copies.
func (c *Copies) Reset(topic string) error {
	w := &copyWrite{op: opReset, topic: topic}
	if c.closed.Load() {
		return w.fail(ledger.ErrCopiesClosed)
	}
	return c.write(w)
}

// SaveState implements ledger.Copies: its transaction is committed with
// synchronous=FULL, an fsync of the WAL, before it returns.
func (c *Copies) SaveState(topic string, state []byte) error {
	w := &copyWrite{op: opSaveState, topic: topic, state: state}
	if c.closed.Load() {
		return w.fail(ledger.ErrCopiesClosed)
	}
	return c.write(w)
}

// readErr is the error of a failed read: ErrCopiesClosed if Close began
// (the pool closed under the read), err otherwise.
func (c *Copies) readErr(err error) error {
	if c.closed.Load() {
		return ledger.ErrCopiesClosed
	}
	return err
}

// Size implements ledger.Copies: the last leaf chunk's, one search.
func (c *Copies) Size(topic string) (uint64, error) {
	if c.closed.Load() {
		return 0, fmt.Errorf("ledger copies: size of %s: %w", topic, ledger.ErrCopiesClosed)
	}
	var chunk, n int64
	err := c.rst[crSize].QueryRowContext(context.Background(), topic).Scan(&chunk, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ledger copies: size of %s: %w", topic, c.readErr(err))
	}
	return uint64(chunk)*copyLeafChunk + uint64(n), nil
}

// Entry implements ledger.Copies: it reads the leaf's chunk and walks it.
func (c *Copies) Entry(topic string, seq uint64) ([]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, ledger.ErrCopiesClosed)
	}
	missing := func() error {
		return fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, ledger.ErrCopyMissing)
	}
	if seq == 0 || seq > math.MaxInt64 {
		return nil, missing()
	}
	chunk, off := (seq-1)/copyLeafChunk, (seq-1)%copyLeafChunk
	rows, err := c.rst[crEntry].QueryContext(context.Background(), topic, int64(chunk))
	if err != nil {
		return nil, fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, c.readErr(err))
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, c.readErr(err))
		}
		return nil, missing()
	}
	var n int64
	var encs sql.RawBytes // the chunk, read in place: only the leaf is copied
	if err := rows.Scan(&n, &encs); err != nil {
		return nil, fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, c.readErr(err))
	}
	if off >= uint64(n) {
		return nil, missing()
	}
	enc, err := chunkEntry(encs, off)
	if err != nil {
		return nil, fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, err)
	}
	return enc, nil
}

// chunkEntry copies the encoding at offset off of a leaf chunk.
func chunkEntry(encs []byte, off uint64) ([]byte, error) {
	for i := uint64(0); ; i++ {
		l, k := binary.Uvarint(encs)
		if k <= 0 || uint64(len(encs)-k) < l {
			return nil, fmt.Errorf("a torn leaf chunk (at leaf %d of it)", i)
		}
		if i == off {
			return bytes.Clone(encs[k : k+int(l) : k+int(l)]), nil
		}
		encs = encs[k+int(l):]
	}
}

// nodeChunk names a chunk of node hashes.
type nodeChunk struct {
	level uint
	chunk uint64
}

// Nodes implements ledger.Copies. The chunks holding the ids are each read
// once; up to maxNodesQuery chunks in one statement, more in several, in
// one read transaction: either way a snapshot, whatever the writer commits
// meanwhile.
func (c *Copies) Nodes(topic string, ids []ledger.NodeID) ([][]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, ledger.ErrCopiesClosed)
	}
	missing := func(id ledger.NodeID) error {
		return fmt.Errorf("ledger copies: nodes of %s: %w: node %d/%d", topic, ledger.ErrCopyMissing, id.Level, id.Index)
	}
	for _, id := range ids {
		if uint64(id.Level) > math.MaxInt64 || id.Index > math.MaxInt64 {
			return nil, missing(id)
		}
	}
	hs := make([][]byte, len(ids))
	ctx := context.Background()
	switch len(ids) {
	case 0:
		return hs, nil
	case 1:
		// The most common read, in a statement of its own: the hash is cut
		// from its chunk in SQL.
		id := ids[0]
		var h []byte
		err := c.rst[crNode].QueryRowContext(ctx, int64(id.Index%copyNodeChunk*copyHashSize+1),
			topic, int64(id.Level), int64(id.Index/copyNodeChunk)).Scan(&h)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, missing(id)
		}
		if err != nil {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, c.readErr(err))
		}
		if len(h) != copyHashSize {
			return nil, missing(id) // past the chunk's end
		}
		hs[0] = h
		return hs, nil
	}
	// The chunks to read, each once, and the ids each serves.
	want := make(map[nodeChunk][]int, len(ids))
	var chunks []nodeChunk
	for i, id := range ids {
		k := nodeChunk{id.Level, id.Index / copyNodeChunk}
		if _, ok := want[k]; !ok {
			chunks = append(chunks, k)
		}
		want[k] = append(want[k], i)
	}
	stmt := func(id int) *sql.Stmt { return c.rst[id] }
	if len(chunks) > maxNodesQuery {
		tx, err := c.rdb.BeginTx(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, c.readErr(err))
		}
		defer tx.Rollback() // a read: nothing to undo
		stmt = func(id int) *sql.Stmt { return tx.StmtContext(ctx, c.rst[id]) }
	}
	for from := 0; from < len(chunks); from += maxNodesQuery {
		part := chunks[from:min(from+maxNodesQuery, len(chunks))]
		i := 0
		for nodesRows[i] < len(part) {
			i++
		}
		args := make([]any, 0, 1+2*nodesRows[i])
		args = append(args, topic)
		for j := range nodesRows[i] {
			k := part[min(j, len(part)-1)]
			args = append(args, int64(k.level), int64(k.chunk))
		}
		if err := readNodes(ctx, stmt(crNodes+i), args, ids, want, hs); err != nil {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, c.readErr(err))
		}
	}
	for i, h := range hs {
		if h == nil {
			return nil, missing(ids[i])
		}
	}
	return hs, nil
}

// readNodes reads the chunks st finds and copies into hs[i] the hash of
// each ids[i] they hold.
func readNodes(ctx context.Context, st *sql.Stmt, args []any, ids []ledger.NodeID, want map[nodeChunk][]int, hs [][]byte) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var level, chunk int64
		var hashes sql.RawBytes // read in place: only the hashes asked are copied
		if err := rows.Scan(&level, &chunk, &hashes); err != nil {
			return err
		}
		for _, i := range want[nodeChunk{uint(level), uint64(chunk)}] {
			at := ids[i].Index % copyNodeChunk * copyHashSize
			if at+copyHashSize <= uint64(len(hashes)) {
				hs[i] = bytes.Clone(hashes[at : at+copyHashSize])
			}
		}
	}
	return rows.Err()
}

// State implements ledger.Copies.
func (c *Copies) State(topic string) ([]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("ledger copies: state of %s: %w", topic, ledger.ErrCopiesClosed)
	}
	var state []byte
	err := c.rst[crState].QueryRowContext(context.Background(), topic).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger copies: state of %s: %w", topic, c.readErr(err))
	}
	if state == nil {
		state = []byte{} // stored empty (a nil state is no row)
	}
	return state, nil
}
