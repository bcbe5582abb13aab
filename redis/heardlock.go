package redis

import (
	"strconv"
	"strings"

	"github.com/baton-pub/baton/internal/recentlock"
)

// Locks as their messages named them (baton.RecentLock, package
// recentlock). An acquisition's message, "lock acquired <epoch> <holder>"
// on the topic's events channel, names the new holder; every other lock
// message (a release, an end with its node lease, a retention change), a
// deletion, a lock change through this Store (its own message comes later)
// and a re-subscription make the topic unknown: read.
type heardLocks struct{ recentlock.Locks }

// heard records a lock message of topic ("acquired <epoch> <holder>", or
// any other: unknown).
func (h *heardLocks) heard(topic, rest string) {
	kind, rest, _ := strings.Cut(rest, " ")
	epochText, holder, _ := strings.Cut(rest, " ")
	epoch, err := strconv.ParseUint(epochText, 10, 64)
	if kind != "acquired" || err != nil || holder == "" {
		h.Forget(topic)
		return
	}
	h.Heard(topic, holder, epoch)
}

// RecentLock implements baton.RecentLock.
func (s *Store) RecentLock(topic string) (string, uint64, bool) { return s.locks.Recent(topic) }
