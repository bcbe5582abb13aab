// Package recentlock keeps the holder of each topic's lock as an engine's
// notifications named it (baton.RecentLock): a standby that finds, after
// its delay, that another node took a freed topic parks behind it without
// reading the lock (one read per orphan of a mass hand-over,
// docs/benchmarks.md, "Locks named by their messages"). An engine records
// an acquisition it heard with Heard, and forgets a topic on every other
// change of its lock (a release, an end with its node lease, a deletion,
// a change it made itself whose notice comes later), and every topic when
// notifications may have been lost.
package recentlock

import "sync"

// Locks is the holders heard, by topic. The zero value is empty and ready.
type Locks struct {
	mu     sync.Mutex
	topics map[string]lock
}

type lock struct {
	holder string
	epoch  uint64
}

// max bounds the topics remembered; past it, the map starts again
// (unknown topics are read).
const max = 1 << 20

// Heard records topic's acquisition by holder at epoch.
func (l *Locks) Heard(topic, holder string, epoch uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.topics == nil || len(l.topics) >= max {
		l.topics = make(map[string]lock)
	}
	l.topics[topic] = lock{holder: holder, epoch: epoch}
}

// Forget makes topics unknown.
func (l *Locks) Forget(topics ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range topics {
		delete(l.topics, t)
	}
}

// Reset forgets every topic: notifications may have been lost.
func (l *Locks) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.topics = nil
}

// Recent implements baton.RecentLock for an engine.
func (l *Locks) Recent(topic string) (holder string, epoch uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.topics[topic]
	return k.holder, k.epoch, ok
}
