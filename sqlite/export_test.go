package sqlite

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
