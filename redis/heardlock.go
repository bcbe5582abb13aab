package redis

import (
	"strconv"
	"strings"
	"sync"
)

// Locks as their messages named them (baton.RecentLock). An acquisition's
// message, "lock acquired <epoch> <holder>" on the topic's events channel,
// names the new holder: a standby that finds, after its delay, that another
// node took a freed topic parks behind it without reading the lock (one
// read per orphan of a mass hand-over, docs/benchmarks.md "Locks named by
// their messages"), and a holder need not read back its own acquisition.
// Every other lock message (a release, an end with its node lease, a
// retention change), a deletion, a lock change through this Store (its own
// message comes later) and a re-subscription make the topic unknown: read.
type heardLocks struct {
	mu     sync.Mutex
	topics map[string]heardLock
}

type heardLock struct {
	holder string
	epoch  uint64
}

// maxHeardLocks bounds the topics remembered; past it, the map starts
// again (unknown topics are read).
const maxHeardLocks = 1 << 20

// heard records a lock message of topic ("acquired <epoch> <holder>", or
// any other: unknown).
func (h *heardLocks) heard(topic, rest string) {
	kind, rest, _ := strings.Cut(rest, " ")
	epochText, holder, _ := strings.Cut(rest, " ")
	epoch, err := strconv.ParseUint(epochText, 10, 64)
	if kind != "acquired" || err != nil || holder == "" {
		h.forget(topic)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.topics == nil || len(h.topics) >= maxHeardLocks {
		h.topics = make(map[string]heardLock)
	}
	h.topics[topic] = heardLock{holder: holder, epoch: epoch}
}

// forget makes topics unknown.
func (h *heardLocks) forget(topics ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range topics {
		delete(h.topics, t)
	}
}

// reset forgets every topic: messages may have been lost.
func (h *heardLocks) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.topics = nil
}

// RecentLock implements baton.RecentLock.
func (s *Store) RecentLock(topic string) (string, uint64, bool) {
	h := &s.locks
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.topics[topic]
	return l.holder, l.epoch, ok
}
