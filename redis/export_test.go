package redis

// BatchSenders is how many batches may be in flight at once.
const BatchSenders = batchSenders

// Queued is how many calls wait for a sender of s's batcher.
func Queued(s *Store) int64 { return s.batch.queued.Load() }
