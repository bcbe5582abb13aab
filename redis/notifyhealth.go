package redis

import (
	"errors"
	"sync"
)

// errNotSubscribed is Notifications' answer while the pub/sub connection
// is down; the cause is logged ("redis pub/sub: connection lost"), not
// returned, since it may name hosts.
var errNotSubscribed = errors.New("redis pub/sub connection down: not subscribed to the change channels")

// notifyState is whether the listener is subscribed (see listen).
type notifyState struct {
	mu   sync.Mutex
	down bool
}

func (n *notifyState) set(down bool) {
	n.mu.Lock()
	n.down = down
	n.mu.Unlock()
}

// Notifications reports nil while the store's pub/sub connection is
// subscribed to the change channels, else why not. While it is down,
// standbys learn of releases and new topics only from their timers and the
// periodic listings: the node reports it as a problem if it lasts
// (node.Config.Notifications; docs/operations.md, "Readiness").
func (s *Store) Notifications() error {
	s.notify.mu.Lock()
	defer s.notify.mu.Unlock()
	if s.notify.down {
		return errNotSubscribed
	}
	return nil
}
