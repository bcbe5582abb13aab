package sqlite

import (
	"context"
	"time"
)

// WriteBatches counts the transactions of s's fenced writes (commits,
// checkpoints, cosignatures, trims, heartbeats).
func WriteBatches(s *Store) int64 { return s.batch.batches.Load() }

// QueuedWrites is how many fenced writes of s wait for a batch or are in
// the one under way.
func QueuedWrites(s *Store) int {
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	return len(s.batch.pending) + s.batch.current
}

// MaxWriteBatch bounds the fenced writes of one transaction.
const MaxWriteBatch = maxWriteBatch

// Announce announces a renewal of s until the returned func is called.
func Announce(s *Store) func() { return s.announce() }

// Announced reports whether s sees a renewal of another handle announced.
func Announced(s *Store) bool { return s.prio != nil && s.prio.announced() }

// GroupedAppends is how many appends of s wait for a group or are in the
// group under way.
func GroupedAppends(s *Store) int {
	s.appends.mu.Lock()
	defer s.appends.mu.Unlock()
	return len(s.appends.pending) + s.appends.running
}

// CopiesTransactions counts the transactions c's writer committed, all
// and those committed with synchronous=FULL (carrying a SaveState).
func CopiesTransactions(c *Copies) (all, durable int64) {
	return c.txs.Load(), c.durableTxs.Load()
}

// QueuedCopyWrites is how many writes of c wait for a batch, and how many
// are in the batch under way.
func QueuedCopyWrites(c *Copies) (waiting, current int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending), c.current
}

// MaxCopyBatch bounds the writes of one copies transaction.
const MaxCopyBatch = maxCopyBatch

// CopiesSynchronous is the synchronous level (PRAGMA synchronous: 1
// NORMAL, 2 FULL) of c's writer connection. Call it with no write under
// way.
func CopiesSynchronous(c *Copies) (int, error) {
	var level int
	err := c.wconn.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&level)
	return level, err
}

// FlushCopies flushes c's pending appends now.
func FlushCopies(c *Copies) error { return c.flush() }

// SetCopiesFlushDelay sets how long after the first pending append c's
// flusher flushes (from the next timer on).
func SetCopiesFlushDelay(c *Copies, d time.Duration) { c.flushDelay.Store(int64(d)) }

// FailCopiesFlushes makes c's flushes fail with f's error (nil f: no
// more).
func FailCopiesFlushes(c *Copies, f func() error) {
	if f == nil {
		c.failFlush.Store(nil)
		return
	}
	c.failFlush.Store(&f)
}

// PendingCopyBytes is the bytes of c's pending appends.
func PendingCopyBytes(c *Copies) int {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	return c.pendBytes
}
