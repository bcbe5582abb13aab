package redis

// Test access to the key layout (keys.go).

// LockKey is the key of topic's lock hash.
func LockKey(s *Store, topic string) string { return s.k.lock(topic) }

// CopyKey is the key of the copy of node's lease in topic's bucket (Cluster).
func CopyKey(s *Store, topic, node string) string { return s.k.copyLease(s.k.bucket(topic), node) }
