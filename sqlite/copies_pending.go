package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/baton-pub/baton/ledger"
)

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
