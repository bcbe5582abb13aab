package redis

// BatchSenders is how many batches may be in flight at once.
const BatchSenders = batchSenders

// Queued is how many calls wait for a sender of s's batcher.
func Queued(s *Store) int64 { return s.batch.queued.Load() }

// Test access to the key layout (keys.go).

// LockKey is the key of topic's lock hash.
func LockKey(s *Store, topic string) string { return s.k.lock(topic) }

// CopyKey is the key of the copy of node's lease in topic's bucket (Cluster).
func CopyKey(s *Store, topic, node string) string { return s.k.copyLease(s.k.bucket(topic), node) }
