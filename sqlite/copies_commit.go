package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/baton-pub/baton/ledger"
)

// maxCopyBatch bounds the writes of one transaction, so that one commit
// does not hold the file's write lock, or its callers, for long.
const maxCopyBatch = 256

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
