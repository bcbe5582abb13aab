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
	"slices"
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
	crLevels
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
	// Each level's last chunk: max() picks the row whose hashes are
	// counted.
	q[crLevels] = `SELECT level, max(chunk), length(hashes) FROM copy_nodes WHERE topic = ? GROUP BY level`
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

// copyWrite is a write waiting for, or in, a batch.
type copyWrite struct {
	op    copyOp
	topic string
	state []byte
	done  chan error // one slot: the writer never blocks on it
}

type copyOp uint8

const (
	opFlush copyOp = iota // the pending appends (every batch flushes them)
	opReset
	opSaveState
)

// fail wraps err as the error of w's operation on its topic.
func (w *copyWrite) fail(err error) error {
	switch w.op {
	case opFlush:
		return fmt.Errorf("ledger copies: flush: %w", err)
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

// commit runs batch in one transaction, with every topic's pending
// appends (see Append), and answers each write.
func (c *Copies) commit(batch []*copyWrite) {
	errs := make([]error, len(batch))
	var committed bool
	var txErr error
	durable := false
	for _, w := range batch {
		durable = durable || w.op == opSaveState
	}
	snap := c.prepareFlush(batch)
	if len(snap) == 0 {
		bare := true
		for _, w := range batch {
			bare = bare && w.op == opFlush
		}
		if bare { // nothing to write
			for _, w := range batch {
				w.done <- nil
			}
			return
		}
	}
	// The batch runs on the driver's connection itself. Through
	// database/sql, a transaction and each statement in it would start a
	// goroutine (to watch a context) and take its locks: a good part of
	// what a leaf's write costs, the rest being SQLite's own work.
	var err error
	if f := c.failFlush.Load(); f != nil && len(snap) > 0 {
		err = (*f)()
	}
	if err == nil {
		err = c.wconn.Raw(func(dc any) error {
			committed, txErr = c.w.commit(dc, batch, errs, durable, snap)
			return nil
		})
	}
	if err == nil {
		err = txErr
	}
	if committed {
		c.txs.Add(1)
		if durable {
			c.durableTxs.Add(1)
		}
	}
	flushErr := c.endFlush(batch, errs, snap, committed, err)
	for i, w := range batch {
		switch {
		case errs[i] != nil:
			w.done <- errs[i]
		case err != nil:
			w.done <- w.fail(err)
		case w.op == opFlush && flushErr != nil:
			w.done <- w.fail(flushErr)
		default:
			w.done <- nil
		}
	}
}

// prepareFlush applies the Resets of batch to the buffer (their topics'
// pending appends dropped, their sizes 0: an Append made while the batch
// commits follows on from the reset copy, and is flushed by a later
// batch, after the reset's DELETE) and takes the pending appends of every
// topic for the batch's transaction. Only the leader calls it, so no
// other flush is under way: the pending data are stored data's next.
func (c *Copies) prepareFlush(batch []*copyWrite) []*topicFlush {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	for _, w := range batch {
		if w.op != opReset {
			continue
		}
		t := c.topicEntry(w.topic)
		c.dropPending(t)
		t.loaded, t.leaves, t.levels, t.err, t.resetting = true, 0, nil, nil, true
	}
	snap := make([]*topicFlush, 0, len(c.dirty))
	for _, t := range c.dirty {
		if t.bytes == 0 { // dropped (a Reset above)
			continue
		}
		tf := &topicFlush{t: t, first: t.leaves + 1, encs: t.pend, bytes: t.bytes}
		for l, h := range t.nodes {
			if len(h) > 0 {
				tf.runs = append(tf.runs, levelRun{level: uint(l), first: t.levels[l], hashes: h})
			}
		}
		snap = append(snap, tf)
	}
	return snap
}

// endFlush updates the buffer after batch's transaction (committed or
// not, err the batch's error) and returns the first error of a topic's
// flush. What a transaction stored leaves the buffer; what it did not
// stays (the topic's next call reports the error), but for a topic whose
// appends do not follow on from the file's (another handle wrote it):
// those are dropped, and its sizes read again.
func (c *Copies) endFlush(batch []*copyWrite, errs []error, snap []*topicFlush, committed bool, err error) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	var flushErr error
	for _, tf := range snap {
		t := tf.t
		switch {
		case !committed:
			t.err = fmt.Errorf("ledger copies: flush %s: %w", t.name, err)
		case tf.err != nil:
			t.err = tf.err
			if errors.Is(tf.err, ledger.ErrCopyGap) {
				c.dropPending(t)
				t.loaded = false
			}
		default:
			t.leaves += uint64(len(tf.encs))
			t.pend = slices.Clone(t.pend[len(tf.encs):])
			for _, r := range tf.runs {
				t.levels[r.level] += uint64(len(r.hashes) / copyHashSize)
				t.nodes[r.level] = slices.Clone(t.nodes[r.level][len(r.hashes):])
			}
			t.bytes -= tf.bytes
			c.pendBytes -= tf.bytes
		}
		if t.err != nil && flushErr == nil {
			flushErr = t.err
		}
	}
	for i, w := range batch {
		if w.op == opReset {
			c.topicEntry(w.topic).resetting = false
		}
		if w.op == opReset && (!committed || errs[i] != nil) {
			// Its rows may be there still: read the sizes again. The
			// appends made since followed on from the reset copy: they
			// are dropped, and the topic's next call says so.
			t := c.topicEntry(w.topic)
			if t.bytes > 0 {
				t.err = fmt.Errorf("ledger copies: reset of %s failed, the appends after it dropped", t.name)
			}
			c.dropPending(t)
			t.loaded = false
		}
	}
	live := c.dirty[:0]
	for _, t := range c.dirty {
		if t.bytes > 0 {
			live = append(live, t)
		} else {
			t.dirty = false
		}
	}
	clear(c.dirty[len(live):])
	c.dirty = live
	switch {
	case len(snap) == 0 && err != nil:
		c.log.Warn("ledger copies: a batch failed", "path", c.path, "writes", len(batch), "err", err)
	case err != nil || flushErr != nil:
		if !c.warned {
			c.warned = true
			if err == nil {
				err = flushErr
			}
			c.log.Warn("ledger copies: a flush failed; its appends stay pending, and the next write of each topic reports it",
				"path", c.path, "writes", len(batch), "topics", len(snap), "pending_bytes", c.pendBytes, "err", err)
		}
	case len(snap) > 0:
		c.warned = false
	}
	if c.pendBytes > 0 {
		notify(c.arm) // what is left is flushed later
	}
	return flushErr
}

// notify sends on ch (one slot) if it is empty.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
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

// commit runs batch in one transaction with the pending appends of snap
// and reports whether it committed. errs[i] is set to the error of
// batch[i], snap[i].err to that of a topic's flush; the error returned is
// the transaction's, which fails every write of the batch not failed
// already. durable: commit with synchronous=FULL.
func (w *copyWriter) commit(dc any, batch []*copyWrite, errs []error, durable bool, snap []*topicFlush) (bool, error) {
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
	if err := w.run(batch, errs, snap); err != nil {
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

// run runs, in the open transaction, the Resets of batch, then the
// topics' flushes, then the SaveStates: each in a savepoint of its own, so
// that a failed one is rolled back alone. A SaveState is not stored if a
// topic's flush failed: it promises that the Appends before it are.
func (w *copyWriter) run(batch []*copyWrite, errs []error, snap []*topicFlush) error {
	for i, cw := range batch {
		if cw.op == opReset {
			if err := w.step(&errs[i], func() error { return w.apply(cw) }); err != nil {
				return err
			}
		}
	}
	var flushErr error
	for _, tf := range snap {
		if err := w.step(&tf.err, func() error { return w.flushTopic(tf) }); err != nil {
			return err
		}
		if tf.err != nil && flushErr == nil {
			flushErr = tf.err
		}
	}
	for i, cw := range batch {
		if cw.op != opSaveState {
			continue
		}
		if flushErr != nil {
			errs[i] = cw.fail(fmt.Errorf("an earlier append is not stored: %w", flushErr))
			continue
		}
		if err := w.step(&errs[i], func() error { return w.apply(cw) }); err != nil {
			return err
		}
	}
	return nil
}

// step runs f in a savepoint, rolled back if f fails (its error in
// *ferr). If SQLite rolled back the whole transaction (as it may on an I/O
// error or a full disk), ROLLBACK TO fails, and so does step: the writes
// after must not run outside the transaction.
func (w *copyWriter) step(ferr *error, f func() error) error {
	if err := w.exec(cwSavepoint); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if *ferr = f(); *ferr != nil {
		if err := w.exec(cwRollbackTo); err != nil {
			return fmt.Errorf("roll back to savepoint: %w", err)
		}
	}
	if err := w.exec(cwRelease); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// flushTopic stores the pending appends of tf.
func (w *copyWriter) flushTopic(tf *topicFlush) error {
	if err := w.append(tf.t.name, tf.first, tf.encs, tf.runs); err != nil {
		return fmt.Errorf("ledger copies: flush %s: %w", tf.t.name, err)
	}
	return nil
}

// apply runs cw in the transaction; its error names cw's operation and
// topic.
func (w *copyWriter) apply(cw *copyWrite) error {
	var err error
	switch cw.op {
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

// append checks that leaves encs from seq first, and the nodes of runs,
// follow on from the stored leaves and nodes, and stores them: a
// statement per chunk touched (see copiesSchema).
func (w *copyWriter) append(topic string, first uint64, encs [][]byte, runs []levelRun) error {
	if len(encs) == 0 || first == 0 {
		size, err := w.size(topic)
		if err != nil {
			return err
		}
		if first != size+1 {
			return fmt.Errorf("%w: first seq %d, %d stored", ledger.ErrCopyGap, first, size)
		}
	}
	// Leaves: the first statement checks that they follow on.
	seq := first - 1 // leaves stored before the next
	for rest := encs; len(rest) > 0; {
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
			w.arg(topic)
			w.arg(int64(chunk))
			w.arg(int64(off))
		case chunk == 0:
			id = cwLeavesFirst
			w.arg(topic)
			w.arg(int64(n))
			w.arg(buf)
		default:
			id = cwLeavesNext
			w.arg(topic)
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
			size, err := w.size(topic)
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: first seq %d, %d stored", ledger.ErrCopyGap, first, size)
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
				w.arg(topic)
				w.arg(int64(r.level))
				w.arg(int64(chunk))
				w.arg(int64(off * copyHashSize))
			case chunk == 0:
				id = cwNodesFirst
				w.arg(topic)
				w.arg(int64(r.level))
				w.arg(part)
			default:
				id = cwNodesNext
				w.arg(topic)
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

// The write-behind buffer's bounds. Append buffers; the pending appends
// are flushed (every topic's in one transaction) copyFlushDelay after the
// first, by the Append that passes copyFlushBytes, with every other write (a
// SaveState's durable commit, a Reset) and at Close. Past
// copyPendingBytes (flushes failing) Append refuses.
const (
	copyFlushDelay   = 100 * time.Millisecond
	copyFlushBytes   = 4 << 20
	copyPendingBytes = 64 << 20
	copyLeafOverhead = 24 // a pending leaf's slice header, counted in its bytes
)

// errCopiesBacklog: Append refuses while the pending appends are past
// copyPendingBytes.
var errCopiesBacklog = errors.New("too many appends pending: flushes fail")

// copyTopic is a topic's sizes in the file and its pending appends, under
// Copies.dmu. Unless loaded (on the first Append; again after a flush
// found the file not as the sizes said), its sizes are unknown and it has
// nothing pending.
type copyTopic struct {
	name   string
	loaded bool
	leaves uint64   // leaves stored
	levels []uint64 // node hashes stored at each level (len(levels) >= len(nodes))
	pend   [][]byte // the pending leaves, seqs leaves+1, ...
	nodes  [][]byte // each level's pending hashes, concatenated, from index levels[l]
	bytes  int      // the pending bytes
	dirty  bool     // in Copies.dirty
	// resetting: a Reset's transaction is under way (the file holds the
	// rows it deletes).
	resetting bool
	err       error // a failed flush's, for the topic's next call
}

// topicFlush is a topic's pending appends taken by a transaction.
type topicFlush struct {
	t     *copyTopic
	first uint64
	encs  [][]byte
	runs  []levelRun
	bytes int
	err   error
}

// topicEntry is topic's entry, made if need be. Call it with c.dmu held.
func (c *Copies) topicEntry(topic string) *copyTopic {
	t := c.topics[topic]
	if t == nil {
		t = &copyTopic{name: topic}
		c.topics[topic] = t
	}
	return t
}

// dropPending drops t's pending appends. Call it with c.dmu held.
func (c *Copies) dropPending(t *copyTopic) {
	c.pendBytes -= t.bytes
	t.pend, t.nodes, t.bytes = nil, nil, 0
}

// loadedTopic returns topic's entry, its sizes loaded, with c.dmu held.
func (c *Copies) loadedTopic(topic string) (*copyTopic, error) {
	c.dmu.Lock()
	if t := c.topics[topic]; t != nil && t.loaded {
		return t, nil
	}
	c.dmu.Unlock()
	leaves, levels, err := c.loadSizes(topic)
	if err != nil {
		return nil, err
	}
	c.dmu.Lock()
	t := c.topicEntry(topic)
	if !t.loaded {
		// Nothing of the topic is pending or being flushed: the file
		// held what was read.
		t.loaded, t.leaves, t.levels = true, leaves, levels
	}
	return t, nil
}

// loadSizes reads the number of leaves, and of node hashes at each level,
// stored for topic.
func (c *Copies) loadSizes(topic string) (uint64, []uint64, error) {
	leaves, err := c.storedSize(topic)
	if err != nil {
		return 0, nil, err
	}
	rows, err := c.rst[crLevels].QueryContext(context.Background(), topic)
	if err != nil {
		return 0, nil, c.readErr(err)
	}
	defer rows.Close()
	var levels []uint64
	for rows.Next() {
		var level, chunk, n int64
		if err := rows.Scan(&level, &chunk, &n); err != nil {
			return 0, nil, c.readErr(err)
		}
		if level < 0 || level > 64 {
			return 0, nil, fmt.Errorf("a node chunk at level %d", level)
		}
		for int64(len(levels)) <= level {
			levels = append(levels, 0)
		}
		levels[level] = uint64(chunk)*copyNodeChunk + uint64(n)/copyHashSize
	}
	if err := rows.Err(); err != nil {
		return 0, nil, c.readErr(err)
	}
	return leaves, levels, nil
}

// Append implements ledger.Copies. It is write-behind: it checks that the
// append follows on from the leaves and nodes stored and pending, copies
// them into the topic's pending appends and returns. A flush stores the
// pending appends of every topic in one transaction (synchronous=NORMAL:
// they survive a crash of the process once flushed; a SaveState flushes
// them first and makes them survive one of the machine). Reads see them
// pending. A flush that failed is reported by the topic's next Append (or
// SaveState), which stores nothing; the pending appends stay, for the
// next flush to store.
func (c *Copies) Append(topic string, first uint64, encs [][]byte, nodes []ledger.Node) error {
	fail := func(err error) error { return fmt.Errorf("ledger copies: append to %s: %w", topic, err) }
	if c.closed.Load() {
		return fail(ledger.ErrCopiesClosed)
	}
	// SQLite's integers are signed: what does not fit is refused here.
	if first > math.MaxInt64 {
		return fail(fmt.Errorf("%w: first seq %d", ledger.ErrCopyGap, first))
	}
	if n := uint64(len(encs)); first > 0 && first-1 > math.MaxInt64-n {
		return fail(fmt.Errorf("%d leaves from seq %d: seqs out of range", n, first))
	}
	for _, nd := range nodes {
		if nd.Level > 64 || nd.Index > math.MaxInt64 {
			return fail(fmt.Errorf("node %d/%d out of range", nd.Level, nd.Index))
		}
	}
	runs, err := levelRuns(nodes) // the hashes copied
	if err != nil {
		return fail(err)
	}
	size := len(nodes) * copyHashSize
	for _, e := range encs {
		size += len(e) + copyLeafOverhead
	}
	t, err := c.loadedTopic(topic)
	if err != nil {
		return fail(c.readErr(err))
	}
	full, err := c.buffer(t, first, encs, runs, size)
	if err != nil {
		return fail(err)
	}
	if full {
		// Past copyFlushBytes: the caller flushes (with the other callers
		// past it, in one batch), so that appending faster than the file
		// stores does not fill the buffer to its bound. Its error is kept
		// with the topics' pending appends.
		_ = c.flush()
	}
	return nil
}

// buffer checks that the append follows on from t's stored and pending
// leaves and nodes and adds it to t's pending appends; full: the pending
// bytes passed copyFlushBytes. Call it with c.dmu held: it releases it.
func (c *Copies) buffer(t *copyTopic, first uint64, encs [][]byte, runs []levelRun, size int) (full bool, err error) {
	defer c.dmu.Unlock()
	fail := func(err error) (bool, error) { return false, err }
	if c.dclosed {
		return fail(ledger.ErrCopiesClosed)
	}
	if t.err != nil {
		err := t.err
		t.err = nil
		return fail(err)
	}
	if have := t.leaves + uint64(len(t.pend)); first != have+1 {
		return fail(fmt.Errorf("%w: first seq %d, %d stored", ledger.ErrCopyGap, first, have))
	}
	for _, r := range runs {
		next := uint64(0)
		if r.level < uint(len(t.levels)) {
			next = t.levels[r.level]
		}
		if r.level < uint(len(t.nodes)) {
			next += uint64(len(t.nodes[r.level]) / copyHashSize)
		}
		if r.first != next {
			return fail(fmt.Errorf("%w: node %d/%d, %d next at that level", ledger.ErrCopyGap, r.level, r.first, next))
		}
	}
	if size == 0 {
		return false, nil
	}
	if c.pendBytes+size > copyPendingBytes {
		notify(c.kick)
		return fail(fmt.Errorf("%w (%d bytes)", errCopiesBacklog, c.pendBytes))
	}
	// The leaves copied into one buffer (the caller may reuse its).
	var total int
	for _, e := range encs {
		total += len(e)
	}
	buf := make([]byte, 0, total)
	for _, e := range encs {
		buf = append(buf, e...)
		t.pend = append(t.pend, buf[len(buf)-len(e):len(buf):len(buf)])
	}
	for _, r := range runs {
		for uint(len(t.nodes)) <= r.level {
			t.nodes = append(t.nodes, nil)
		}
		for len(t.levels) < len(t.nodes) {
			t.levels = append(t.levels, 0)
		}
		t.nodes[r.level] = append(t.nodes[r.level], r.hashes...)
	}
	if !t.dirty {
		t.dirty = true
		c.dirty = append(c.dirty, t)
	}
	t.bytes += size
	if c.pendBytes == 0 {
		notify(c.arm)
	}
	c.pendBytes += size
	return c.pendBytes >= copyFlushBytes, nil
}

// flusher flushes the pending appends copyFlushDelay after it is armed,
// or at once when kicked, until Close stops it.
func (c *Copies) flusher() {
	defer close(c.flusherDone)
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-c.arm:
			timer := time.NewTimer(time.Duration(c.flushDelay.Load()))
			select {
			case <-c.stop:
				timer.Stop()
				return
			case <-timer.C:
			case <-c.kick:
				timer.Stop()
			}
		}
		_ = c.flush() // a failure is kept with each topic's pending appends, and logged
	}
}

// flush stores the pending appends of every topic (in the next batch).
func (c *Copies) flush() error {
	c.dmu.Lock()
	empty := c.pendBytes == 0
	c.dmu.Unlock()
	if empty {
		return nil
	}
	return c.write(&copyWrite{op: opFlush})
}

// takeErr returns, and forgets, the error of topic's failed flush.
func (c *Copies) takeErr(topic string) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	t := c.topics[topic]
	if t == nil || t.err == nil {
		return nil
	}
	err := t.err
	t.err = nil
	return err
}

// Reset implements ledger.Copies. It drops the topic's pending appends
// (and the error of a failed flush of them) with its stored ones.
func (c *Copies) Reset(topic string) error {
	w := &copyWrite{op: opReset, topic: topic}
	if c.closed.Load() {
		return w.fail(ledger.ErrCopiesClosed)
	}
	return c.write(w)
}

// SaveState implements ledger.Copies: its transaction, which flushes the
// pending appends of every topic, is committed with synchronous=FULL, an
// fsync of the WAL, before it returns. It fails (saving nothing) if a
// flush of the topic failed since its last call, or if the pending
// appends of any topic cannot be flushed.
func (c *Copies) SaveState(topic string, state []byte) error {
	w := &copyWrite{op: opSaveState, topic: topic, state: state}
	if c.closed.Load() {
		return w.fail(ledger.ErrCopiesClosed)
	}
	if err := c.takeErr(topic); err != nil {
		return w.fail(err)
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

// Size implements ledger.Copies: stored and pending leaves. It reads the
// stored size from the file (a tree reads it when it opens): if that is
// not the size the topic's entry has, while nothing of it is pending or
// being reset (the file was changed behind this handle: another handle,
// or a repair), the entry's sizes are read again at its next Append.
func (c *Copies) Size(topic string) (uint64, error) {
	if c.closed.Load() {
		return 0, fmt.Errorf("ledger copies: size of %s: %w", topic, ledger.ErrCopiesClosed)
	}
	n, err := c.storedSize(topic)
	if err != nil {
		return 0, fmt.Errorf("ledger copies: size of %s: %w", topic, err)
	}
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if t := c.topics[topic]; t != nil && t.loaded {
		if t.bytes == 0 && !t.resetting && t.leaves != n {
			t.loaded = false
			return n, nil
		}
		return t.leaves + uint64(len(t.pend)), nil
	}
	return n, nil
}

// storedSize reads the number of leaves stored for topic: the last leaf
// chunk's, one search.
func (c *Copies) storedSize(topic string) (uint64, error) {
	var chunk, n int64
	err := c.rst[crSize].QueryRowContext(context.Background(), topic).Scan(&chunk, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, c.readErr(err)
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
	c.dmu.Lock()
	if t := c.topics[topic]; t != nil && t.loaded && seq > t.leaves {
		// Pending, or not there.
		var enc []byte
		if k := seq - t.leaves - 1; k < uint64(len(t.pend)) {
			enc = bytes.Clone(t.pend[k])
		}
		c.dmu.Unlock()
		if enc == nil {
			return nil, missing()
		}
		return enc, nil
	}
	c.dmu.Unlock()
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
	// The pending hashes from the buffer, the stored ones from the file.
	var stored []int // the ids to read from the file, if some are pending
	var hs [][]byte
	c.dmu.Lock()
	if t := c.topics[topic]; t != nil && t.loaded && len(t.nodes) > 0 {
		hs = make([][]byte, len(ids))
		stored = make([]int, 0, len(ids))
		for i, id := range ids {
			var have uint64
			if id.Level < uint(len(t.levels)) {
				have = t.levels[id.Level]
			}
			if id.Index < have {
				stored = append(stored, i)
				continue
			}
			at := (id.Index - have) * copyHashSize
			if id.Level >= uint(len(t.nodes)) || at >= uint64(len(t.nodes[id.Level])) {
				c.dmu.Unlock()
				return nil, missing(id)
			}
			hs[i] = bytes.Clone(t.nodes[id.Level][at : at+copyHashSize])
		}
	}
	c.dmu.Unlock()
	if hs == nil {
		return c.storedNodes(topic, ids)
	}
	if len(stored) > 0 {
		sub := make([]ledger.NodeID, len(stored))
		for j, i := range stored {
			sub[j] = ids[i]
		}
		got, err := c.storedNodes(topic, sub)
		if err != nil {
			return nil, err
		}
		for j, i := range stored {
			hs[i] = got[j]
		}
	}
	return hs, nil
}

// storedNodes reads node hashes from the file.
func (c *Copies) storedNodes(topic string, ids []ledger.NodeID) ([][]byte, error) {
	missing := func(id ledger.NodeID) error {
		return fmt.Errorf("ledger copies: nodes of %s: %w: node %d/%d", topic, ledger.ErrCopyMissing, id.Level, id.Index)
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
