package node

import (
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// leaseState is what the node knows of its own node lease (see
// elector.Session): the lease, whether it is trusted, and since when it is
// not.
type leaseState struct {
	mu        sync.Mutex
	lease     baton.NodeLease
	trusted   bool
	untrusted time.Time // zero while trusted
}

func (l *leaseState) set(nl baton.NodeLease, trusted bool, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lease, l.trusted = nl, trusted
	switch {
	case trusted:
		l.untrusted = time.Time{}
	case l.untrusted.IsZero():
		l.untrusted = now
	}
}

// NodeLease reports the node's lease and whether it is trusted now.
func (n *Node) NodeLease() (baton.NodeLease, bool) {
	n.lease.mu.Lock()
	defer n.lease.mu.Unlock()
	return n.lease.lease, n.lease.trusted
}
