// Package leasetest takes topic leases for tests, as a node would: under
// the holder's node lease, started on first use.
package leasetest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/baton-pub/baton"
)

// Acquire takes topic's lease for holder under holder's live node lease,
// starting one with ttl if holder has none.
func Acquire(ctx context.Context, st baton.Locks, topic, holder string, ttl time.Duration) (baton.Lease, error) {
	nl, err := Node(ctx, st, holder, ttl)
	if err != nil {
		return baton.Lease{}, err
	}
	return st.Acquire(ctx, topic, nl)
}

// Node returns holder's live node lease, starting one with ttl if there is
// none.
func Node(ctx context.Context, st baton.Locks, holder string, ttl time.Duration) (baton.NodeLease, error) {
	nl, err := st.AcquireNode(ctx, holder, ttl)
	if !errors.Is(err, baton.ErrLeaseHeld) {
		return nl, err
	}
	all, err := st.NodeLeases(ctx)
	if err != nil {
		return baton.NodeLease{}, err
	}
	for _, nl := range all {
		if nl.Node == holder && nl.Remaining > 0 {
			return nl, nil
		}
	}
	return baton.NodeLease{}, fmt.Errorf("node lease of %s: held, but not listed live", holder)
}
