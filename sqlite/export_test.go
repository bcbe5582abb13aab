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

// Announce announces a renewal of s until the returned func is called.
func Announce(s *Store) func() { return s.announce() }

// Announced reports whether s sees a renewal of another handle announced.
func Announced(s *Store) bool { return s.prio != nil && s.prio.announced() }

// QueuedAppends is how many appends of s wait for a group.
func QueuedAppends(s *Store) int {
	s.appends.mu.Lock()
	defer s.appends.mu.Unlock()
	return len(s.appends.pending)
}
