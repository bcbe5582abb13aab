package redis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/baton-pub/baton"
)

// Node leases (doc.go, "Node leases"). Each method is one script on the
// node's keys; the scripts that end a node lease also write the record of
// every topic lease under it, in the same script.

// AcquireNode implements baton.Locks.
func (s *Store) AcquireNode(ctx context.Context, node string, ttl time.Duration) (baton.NodeLease, error) {
	if err := baton.ValidateNodeLease(node, ttl); err != nil {
		return baton.NodeLease{}, err
	}
	t0 := time.Now()
	r, err := s.run(ctx, scriptAcquireNode, true, []string{s.k.nodeLease(node)},
		s.k.p, s.k.nodesChannel(), node, micros(ttl))
	if err != nil {
		return baton.NodeLease{}, fmt.Errorf("acquire node %s: %w", node, err)
	}
	switch replyStr(r, 0) {
	case "ok":
		s.nodeEnded(replyStrs(r, 4))
		s.sig.Notify("", baton.SignalNode)
		acq, exp := replyInt(r, 2), replyInt(r, 3)
		nl := baton.NodeLease{Node: node, Epoch: replyUint(r, 1), AcquiredAt: fromMicros(acq),
			ExpiresAt: fromMicros(exp), Remaining: time.Duration(exp-acq) * time.Microsecond}
		if s.k.cluster() {
			// Also ends the copies of an earlier, lapsed epoch. A bucket
			// the push missed gets its copy at the first Acquire there.
			if err := s.pushCopies(ctx, nl, t0, ttl); err != nil {
				s.log.Warn("redis: copy a new node lease into the buckets", "err", err)
			}
		}
		return nl, nil
	case "held":
		return baton.NodeLease{}, fmt.Errorf("acquire node %s: epoch %s is live for %v more: %w",
			node, replyStr(r, 1), time.Duration(replyInt(r, 2))*time.Microsecond, baton.ErrLeaseHeld)
	}
	return baton.NodeLease{}, fmt.Errorf("acquire node %s: unexpected reply %v", node, r)
}

// RenewNode implements baton.Locks. A renewal writes the node's keys only
// and publishes nothing, whatever the number of topics under the lease.
func (s *Store) RenewNode(ctx context.Context, nl baton.NodeLease, ttl time.Duration) (baton.NodeLease, error) {
	if err := baton.ValidateNodeLease(nl.Node, ttl); err != nil {
		return baton.NodeLease{}, err
	}
	t0 := time.Now()
	r, err := s.run(ctx, scriptRenewNode, true, []string{s.k.nodeLease(nl.Node)},
		s.k.p, s.k.nodesChannel(), nl.Node, nl.Epoch, micros(ttl))
	if err != nil {
		return baton.NodeLease{}, fmt.Errorf("renew node %s epoch %d: %w", nl.Node, nl.Epoch, err)
	}
	switch replyStr(r, 0) {
	case "ok":
		exp, now := replyInt(r, 2), replyInt(r, 3)
		out := baton.NodeLease{Node: nl.Node, Epoch: nl.Epoch, AcquiredAt: parseMicros(replyStr(r, 1)),
			ExpiresAt: fromMicros(exp), Remaining: time.Duration(exp-now) * time.Microsecond}
		if s.k.cluster() {
			// The renewal stands on {_nodes}: a bucket the push missed
			// keeps its copy's earlier expiry, and its topics fence early.
			if err := s.pushCopies(ctx, out, t0, ttl); err != nil {
				s.log.Warn("redis: renew the copies of a node lease", "err", err)
			}
		}
		return out, nil
	case "lost":
		return baton.NodeLease{}, s.nodeLost(ctx, "renew node", nl, r, true)
	}
	return baton.NodeLease{}, fmt.Errorf("renew node %s: unexpected reply %v", nl.Node, r)
}

// ReleaseNode implements baton.Locks.
func (s *Store) ReleaseNode(ctx context.Context, nl baton.NodeLease, reason baton.ReleaseReason) ([]baton.ReleaseRecord, error) {
	if err := baton.ValidateNodeRelease(nl, reason); err != nil {
		return nil, err
	}
	r, err := s.run(ctx, scriptReleaseNode, true, []string{s.k.nodeLease(nl.Node)},
		s.k.p, s.k.nodesChannel(), nl.Node, nl.Epoch, string(reason))
	if err != nil {
		return nil, fmt.Errorf("release node %s epoch %d: %w", nl.Node, nl.Epoch, err)
	}
	switch replyStr(r, 0) {
	case "ok":
		recs, err := s.nodeRecords("release node", nl.Node, r, 1)
		if err == nil && s.k.cluster() {
			recs, err = s.endCopies(ctx, nl.Node, nl.Epoch, reason)
		}
		return recs, err
	case "lost":
		// A peer's end of a node lease it found gone (crashed) that
		// another peer's came first: that one ends the copies, with its
		// reason; ending them here as expired would race it.
		return nil, s.nodeLost(ctx, "release node", nl, r, reason != baton.ReasonCrashed)
	}
	return nil, fmt.Errorf("release node %s: unexpected reply %v", nl.Node, r)
}

// ExpireNode implements baton.Locks.
func (s *Store) ExpireNode(ctx context.Context, node string) ([]baton.ReleaseRecord, error) {
	if err := baton.ValidateLeave(node); err != nil {
		return nil, err
	}
	r, err := s.run(ctx, scriptExpireNode, true, []string{s.k.nodeLease(node)},
		s.k.p, s.k.nodesChannel(), node)
	if err != nil {
		return nil, fmt.Errorf("expire node %s: %w", node, err)
	}
	switch replyStr(r, 0) {
	case "ok":
		recs, err := s.nodeRecords("expire node", node, r, 2)
		if err == nil && s.k.cluster() {
			recs, err = s.endCopies(ctx, node, replyUint(r, 1), baton.ReasonExpired)
		}
		return recs, err
	case "held":
		return nil, fmt.Errorf("expire node %s: epoch %s is live for %v more: %w",
			node, replyStr(r, 1), time.Duration(replyInt(r, 2))*time.Microsecond, baton.ErrLeaseHeld)
	case "notfound":
		if epoch := replyUint(r, 1); epoch > 0 && s.k.cluster() {
			// Ended already on {_nodes}: finish the copies that whoever
			// ended it may have left (a crash in the middle).
			if recs, err := s.endCopies(ctx, node, epoch, baton.ReasonExpired); err != nil || len(recs) > 0 {
				return recs, err
			}
		}
		return nil, fmt.Errorf("expire node %s: no lapsed node lease: %w", node, baton.ErrNotFound)
	}
	return nil, fmt.Errorf("expire node %s: unexpected reply %v", node, r)
}

// NodeLeases implements baton.Locks: one read-only script over the set of
// node leases not ended.
func (s *Store) NodeLeases(ctx context.Context) ([]baton.NodeLease, error) {
	r, err := s.run(ctx, scriptNodeLeases, false, []string{s.k.nodes()}, s.k.p)
	if err != nil {
		return nil, fmt.Errorf("list node leases: %w", err)
	}
	now := replyInt(r, 0)
	var out []baton.NodeLease
	for i := 1; i+4 < len(r); i += 5 {
		exp := replyInt(r, i+3)
		out = append(out, baton.NodeLease{Node: replyStr(r, i), Epoch: replyUint(r, i+1),
			AcquiredAt: fromMicros(replyInt(r, i+2)), ExpiresAt: fromMicros(exp),
			Remaining: time.Duration(exp-now) * time.Microsecond, Leases: int(replyInt(r, i+4))})
	}
	slices.SortFunc(out, func(a, b baton.NodeLease) int { return strings.Compare(a.Node, b.Node) })
	if s.k.cluster() {
		// A node's topics are in one set per bucket.
		nodes := make([]string, len(out))
		for i, nl := range out {
			nodes[i] = nl.Node
		}
		counts, err := s.bucketCounts(ctx, nodes)
		if err != nil {
			return nil, fmt.Errorf("list node leases: count topics: %w", err)
		}
		for i := range out {
			out[i].Leases = counts[i]
		}
	}
	return out, nil
}

// nodeRecords decodes the records of an "ok" reply (r[from:]) of a script
// that ended a node lease, and signals what it ended.
func (s *Store) nodeRecords(op, node string, r []any, from int) ([]baton.ReleaseRecord, error) {
	recs, err := s.decodeRecords(r, from)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, node, err)
	}
	s.sig.Notify("", baton.SignalNode)
	return recs, nil
}

// nodeLost is the error of a "lost" reply {'lost', why, topic...}; the
// topics are those whose leases ended because the script found the node
// lease lapsed, and are signalled. With copies, on Redis Cluster, it also
// ends the node lease's copies in the buckets.
func (s *Store) nodeLost(ctx context.Context, op string, nl baton.NodeLease, r []any, copies bool) error {
	if ended := replyStrs(r, 2); len(ended) > 0 {
		s.nodeEnded(ended)
		s.sig.Notify("", baton.SignalNode)
	}
	if copies && s.k.cluster() {
		// The node lease at nl.Epoch is not live on {_nodes}: neither may
		// its copies be (their records are signalled).
		_, _ = s.endCopies(ctx, nl.Node, nl.Epoch, baton.ReasonExpired)
	}
	return fmt.Errorf("%s %s epoch %d: %s: %w", op, nl.Node, nl.Epoch, replyStr(r, 1), baton.ErrLeaseLost)
}

// nodeEnded signals SignalLock and SignalFreed on the topics whose leases
// ended with a node lease.
func (s *Store) nodeEnded(topics []string) {
	s.locks.Forget(topics...)
	s.countsChanged()
	for _, t := range topics {
		s.sig.Notify(t, baton.SignalLock|baton.SignalFreed)
	}
}
