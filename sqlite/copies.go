package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
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

// The copies' schema. WITHOUT ROWID: each table is its primary key's
// B-tree, so a topic's rows are contiguous and each lookup is one search.
const copiesSchema = `
CREATE TABLE IF NOT EXISTS copy_leaves (
	topic TEXT NOT NULL,
	seq   INTEGER NOT NULL,
	enc   BLOB,
	PRIMARY KEY (topic, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS copy_nodes (
	topic TEXT NOT NULL,
	level INTEGER NOT NULL,
	idx   INTEGER NOT NULL,
	hash  BLOB,
	PRIMARY KEY (topic, level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS copy_states (
	topic TEXT NOT NULL PRIMARY KEY,
	state BLOB
) WITHOUT ROWID;
`

// maxCopyBatch bounds the writes of one transaction, so that one commit
// does not hold the file's write lock, or its callers, for long.
const maxCopyBatch = 256

// copyRows are the row counts of the multi-row INSERTs prepared for
// Append, largest first: n rows go in at most one statement of each size
// below 64 and n/64 of 64. Running a statement costs several times what
// binding a row does, so 100 leaves go in 3 statements, not 100.
var copyRows = [...]int{64, 32, 16, 8, 4, 2, 1}

// maxNodesQuery is the most node hashes one statement reads; nodesRows are
// the sizes prepared, a read padded to the next (by repeating its last id).
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
	cwLeaves // + i: copyRows[i] leaves
	cwNodes  = cwLeaves + len(copyRows)
	cwCount  = cwNodes + len(copyRows)
)

const (
	// Reader statements.
	crSize = iota
	crEntry
	crState
	crNode
	crNodes // + i: nodesRows[i] nodes
	crCount = crNodes + len(nodesRows)
)

var copyWriterSQL = func() [cwCount]string {
	var q [cwCount]string
	q[cwBegin] = `BEGIN IMMEDIATE`
	q[cwCommit] = `COMMIT`
	q[cwRollback] = `ROLLBACK`
	q[cwSize] = `SELECT max(seq) FROM copy_leaves WHERE topic = ?`
	q[cwResetLeaves] = `DELETE FROM copy_leaves WHERE topic = ?`
	q[cwResetNodes] = `DELETE FROM copy_nodes WHERE topic = ?`
	q[cwPutState] = `INSERT OR REPLACE INTO copy_states (topic, state) VALUES (?, ?)`
	q[cwDropState] = `DELETE FROM copy_states WHERE topic = ?`
	q[cwSavepoint] = `SAVEPOINT copy_write`
	q[cwRollbackTo] = `ROLLBACK TO copy_write`
	q[cwRelease] = `RELEASE copy_write`
	// OR FAIL, and an upsert rather than INSERT OR REPLACE (the same row
	// in the end): a statement that may write several rows and abort has
	// SQLite keep a statement journal, to undo its own rows; an Append is
	// undone whole anyway (its savepoint, or the transaction), and the
	// journal cost a tenth of a batch's time.
	for i, n := range copyRows {
		q[cwLeaves+i] = `INSERT OR FAIL INTO copy_leaves (topic, seq, enc) VALUES ` + rowsOf("(?, ?, ?)", n)
		q[cwNodes+i] = `INSERT OR FAIL INTO copy_nodes (topic, level, idx, hash) VALUES ` + rowsOf("(?, ?, ?, ?)", n) +
			` ON CONFLICT (topic, level, idx) DO UPDATE SET hash = excluded.hash`
	}
	return q
}()

var copyReaderSQL = func() [crCount]string {
	var q [crCount]string
	q[crSize] = `SELECT max(seq) FROM copy_leaves WHERE topic = ?`
	q[crEntry] = `SELECT enc FROM copy_leaves WHERE topic = ? AND seq = ?`
	q[crState] = `SELECT state FROM copy_states WHERE topic = ?`
	// One search of the primary key per id. A NULL hash (a Node stored
	// with a nil Hash) reads as not stored, as in MemCopies.
	q[crNode] = `SELECT hash FROM copy_nodes WHERE topic = ? AND level = ? AND idx = ? AND hash IS NOT NULL`
	for i, n := range nodesRows {
		q[crNodes+i] = `SELECT level, idx, hash FROM copy_nodes WHERE topic = ? AND hash IS NOT NULL AND (level, idx) IN (VALUES ` + rowsOf("(?, ?)", n) + `)`
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
	if _, err := c.wconn.ExecContext(ctx, copiesSchema); err != nil {
		return fmt.Errorf("create schema: %w", err)
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
	w.dest = make([]driver.Value, 1)
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

// size reads the largest seq stored for topic.
func (w *copyWriter) size(topic string) (int64, error) {
	w.arg(topic)
	rows, err := w.st[cwSize].QueryContext(context.Background(), w.args)
	clear(w.args)
	w.args = w.args[:0]
	if err != nil {
		return 0, err
	}
	err = rows.Next(w.dest)
	// The statement holds its read of the table until reset, which Close
	// does.
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	n, _ := w.dest[0].(int64) // NULL (nil): no leaf
	w.dest[0] = nil
	return n, nil
}

// append checks that cw follows on from the stored leaves and stores them
// and the node hashes, in as few statements as copyRows allows.
func (w *copyWriter) append(cw *copyWrite) error {
	size, err := w.size(cw.topic)
	if err != nil {
		return err
	}
	if cw.first != uint64(size)+1 {
		return fmt.Errorf("%w: first seq %d, %d stored", ledger.ErrCopyGap, cw.first, size)
	}
	seq := int64(cw.first)
	for rest := cw.encs; len(rest) > 0; {
		i, n := rowsFor(len(rest))
		for _, e := range rest[:n] {
			if e == nil {
				e = []byte{} // NULL is for no value; an empty encoding is one
			}
			w.arg(cw.topic)
			w.arg(seq)
			w.arg(e)
			seq++
		}
		if err := w.exec(cwLeaves + i); err != nil {
			return err
		}
		rest = rest[n:]
	}
	for rest := cw.nodes; len(rest) > 0; {
		i, n := rowsFor(len(rest))
		for _, nd := range rest[:n] {
			w.arg(cw.topic)
			w.arg(int64(nd.Level))
			w.arg(int64(nd.Index))
			w.arg(nd.Hash)
		}
		if err := w.exec(cwNodes + i); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// rowsFor picks the widest multi-row INSERT for n rows: its index in
// copyRows and its row count.
func rowsFor(n int) (int, int) {
	for i, r := range copyRows {
		if r <= n {
			return i, r
		}
	}
	return len(copyRows) - 1, 1
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

// Size implements ledger.Copies.
func (c *Copies) Size(topic string) (uint64, error) {
	if c.closed.Load() {
		return 0, fmt.Errorf("ledger copies: size of %s: %w", topic, ledger.ErrCopiesClosed)
	}
	var size sql.NullInt64
	if err := c.rst[crSize].QueryRowContext(context.Background(), topic).Scan(&size); err != nil {
		return 0, fmt.Errorf("ledger copies: size of %s: %w", topic, c.readErr(err))
	}
	return uint64(size.Int64), nil
}

// Entry implements ledger.Copies.
func (c *Copies) Entry(topic string, seq uint64) ([]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, ledger.ErrCopiesClosed)
	}
	if seq == 0 || seq > math.MaxInt64 {
		return nil, fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, ledger.ErrCopyMissing)
	}
	var enc []byte
	err := c.rst[crEntry].QueryRowContext(context.Background(), topic, int64(seq)).Scan(&enc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, ledger.ErrCopyMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger copies: leaf %d of %s: %w", seq, topic, c.readErr(err))
	}
	if enc == nil {
		enc = []byte{} // the driver reads an empty BLOB as nil
	}
	return enc, nil
}

// Nodes implements ledger.Copies. Up to maxNodesQuery ids are read in one
// statement; more in several, in one read transaction: either way a
// snapshot, whatever the writer commits meanwhile.
func (c *Copies) Nodes(topic string, ids []ledger.NodeID) ([][]byte, error) {
	if c.closed.Load() {
		return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, ledger.ErrCopiesClosed)
	}
	for _, id := range ids {
		if uint64(id.Level) > math.MaxInt64 || id.Index > math.MaxInt64 {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w: node %d/%d", topic, ledger.ErrCopyMissing, id.Level, id.Index)
		}
	}
	hs := make([][]byte, len(ids))
	ctx := context.Background()
	switch len(ids) {
	case 0:
		return hs, nil
	case 1:
		// The most common read, in a statement of its own (a third cheaper).
		id := ids[0]
		var h []byte
		err := c.rst[crNode].QueryRowContext(ctx, topic, int64(id.Level), int64(id.Index)).Scan(&h)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w: node %d/%d", topic, ledger.ErrCopyMissing, id.Level, id.Index)
		}
		if err != nil {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, c.readErr(err))
		}
		if h == nil {
			h = []byte{} // the driver reads an empty BLOB as nil
		}
		hs[0] = h
		return hs, nil
	}
	stmt := func(id int) *sql.Stmt { return c.rst[id] }
	if len(ids) > maxNodesQuery {
		tx, err := c.rdb.BeginTx(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, c.readErr(err))
		}
		defer tx.Rollback() // a read: nothing to undo
		stmt = func(id int) *sql.Stmt { return tx.StmtContext(ctx, c.rst[id]) }
	}
	found := make(map[ledger.NodeID][]byte, len(ids))
	for from := 0; from < len(ids); from += maxNodesQuery {
		part := ids[from:min(from+maxNodesQuery, len(ids))]
		i := 0
		for nodesRows[i] < len(part) {
			i++
		}
		args := make([]any, 0, 1+2*nodesRows[i])
		args = append(args, topic)
		for j := range nodesRows[i] {
			id := part[min(j, len(part)-1)]
			args = append(args, int64(id.Level), int64(id.Index))
		}
		if err := readNodes(ctx, stmt(crNodes+i), args, found); err != nil {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w", topic, c.readErr(err))
		}
	}
	for i, id := range ids {
		h, ok := found[id]
		if !ok {
			return nil, fmt.Errorf("ledger copies: nodes of %s: %w: node %d/%d", topic, ledger.ErrCopyMissing, id.Level, id.Index)
		}
		hs[i] = h
		found[id] = bytes.Clone(h) // an id asked again gets a copy of its own
	}
	return hs, nil
}

// readNodes adds the node hashes st finds to found.
func readNodes(ctx context.Context, st *sql.Stmt, args []any, found map[ledger.NodeID][]byte) error {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var level, index int64
		var h []byte
		if err := rows.Scan(&level, &index, &h); err != nil {
			return err
		}
		if h == nil {
			h = []byte{} // the driver reads an empty BLOB as nil
		}
		found[ledger.NodeID{Level: uint(level), Index: uint64(index)}] = h
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
