package memstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/baton-pub/baton"
)

// nodeLease is one node's latest node lease and the topics held under it.
type nodeLease struct {
	lease  baton.NodeLease
	ended  bool
	topics map[string]struct{}
}

func (n *nodeLease) live(now time.Time) bool {
	return n != nil && n.lease.Epoch > 0 && !n.ended && now.Before(n.lease.ExpiresAt)
}

// live reports whether the topic's lease is live: not recorded (released or
// ended), and its node lease live. An unrecorded topic lease always has its
// node lease of the same epoch unended (ending a node lease records its
// topics in the same step), so only the expiry is left to check.
func (d *data) live(t *topic, now time.Time) bool {
	return t.lease.Epoch > 0 && !t.recorded && d.nodes[t.lease.Holder].live(now)
}

// expiresAt is when the topic's unrecorded lease ends: its node lease's.
func (d *data) expiresAt(t *topic) time.Time {
	if n := d.nodes[t.lease.Holder]; n != nil && n.lease.Epoch == t.lease.NodeEpoch {
		return n.lease.ExpiresAt
	}
	return t.lease.ExpiresAt
}

// record writes the release record of the topic's unrecorded lease and
// signals sig (SignalLock, with SignalFreed when it ended with its node
// lease). Callers hold mu.
func (d *data) record(t *topic, reason baton.ReleaseReason, at time.Time, sig baton.Signal) baton.ReleaseRecord {
	t.recorded = true
	t.lease.ExpiresAt = at
	if n := d.nodes[t.lease.Holder]; n != nil {
		delete(n.topics, t.name)
	}
	r := baton.ReleaseRecord{Topic: t.name, Holder: t.lease.Holder, Epoch: t.lease.Epoch, Reason: reason,
		At: at, LastSeq: t.cursor.Seq, LastHash: t.cursor.Hash}
	t.records = append(t.records, r)
	d.sig.Notify(t.name, sig)
	return r
}

// recordExpired writes the release record of a lapsed topic lease that has
// none and reports whether it did. Callers hold mu.
func (d *data) recordExpired(t *topic, now time.Time) bool {
	if t.lease.Epoch == 0 || t.recorded || d.live(t, now) {
		return false
	}
	d.record(t, baton.ReasonExpired, d.expiresAt(t), baton.SignalLock|baton.SignalFreed)
	return true
}

// endNode ends the node's latest node lease, writing a record with reason
// (at at) for every topic under it, and signals SignalNode. Callers hold mu.
func (d *data) endNode(n *nodeLease, reason baton.ReleaseReason, at time.Time) []baton.ReleaseRecord {
	names := make([]string, 0, len(n.topics))
	for name := range n.topics {
		names = append(names, name)
	}
	sort.Strings(names)
	recs := make([]baton.ReleaseRecord, 0, len(names))
	for _, name := range names {
		recs = append(recs, d.record(d.topics[name], reason, at, baton.SignalLock|baton.SignalFreed))
	}
	n.ended = true
	if at.Before(n.lease.ExpiresAt) {
		n.lease.ExpiresAt = at
	}
	d.sig.Notify("", baton.SignalNode)
	return recs
}

// endLapsed ends n if it lapsed without being ended and reports whether it
// did. Callers hold mu.
func (d *data) endLapsed(n *nodeLease, now time.Time) ([]baton.ReleaseRecord, bool) {
	if n == nil || n.lease.Epoch == 0 || n.ended || n.live(now) {
		return nil, false
	}
	return d.endNode(n, baton.ReasonExpired, n.lease.ExpiresAt), true
}

// holding returns the topic if (holder, epoch) is its live lease, else nil.
// Callers hold mu.
func (d *data) holding(name, holder string, epoch uint64, now time.Time) *topic {
	if t := d.topics[name]; t != nil && epoch != 0 && t.lease.Epoch == epoch && t.lease.Holder == holder && d.live(t, now) {
		return t
	}
	return nil
}

// liveNode returns nl's node lease if it is live; nil if not, after ending
// it if it lapsed without being ended. Callers hold mu.
func (d *data) liveNode(nl baton.NodeLease, now time.Time) *nodeLease {
	n := d.nodes[nl.Node]
	if n == nil || n.lease.Epoch != nl.Epoch {
		return nil
	}
	if !n.live(now) {
		d.endLapsed(n, now)
		return nil
	}
	return n
}

// AcquireNode starts a node lease.
func (s *Store) AcquireNode(ctx context.Context, node string, ttl time.Duration) (baton.NodeLease, error) {
	d, err := s.begin(ctx, "acquire node", baton.ValidateNodeLease(node, ttl))
	if err != nil {
		return baton.NodeLease{}, err
	}
	defer d.mu.Unlock()
	now := d.now()
	n := d.nodes[node]
	if n.live(now) {
		return baton.NodeLease{}, fmt.Errorf("acquire node %s: epoch %d is live: %w", node, n.lease.Epoch, baton.ErrLeaseHeld)
	}
	var epoch uint64
	if n != nil {
		d.endLapsed(n, now)
		epoch = n.lease.Epoch
	}
	n = &nodeLease{lease: baton.NodeLease{Node: node, Epoch: epoch + 1, AcquiredAt: now, ExpiresAt: now.Add(ttl)},
		topics: make(map[string]struct{})}
	d.nodes[node] = n
	d.sig.Notify("", baton.SignalNode)
	out := n.lease
	out.Remaining = ttl
	return out, nil
}

// RenewNode extends a live node lease.
func (s *Store) RenewNode(ctx context.Context, nl baton.NodeLease, ttl time.Duration) (baton.NodeLease, error) {
	d, err := s.begin(ctx, "renew node", baton.ValidateNodeLease(nl.Node, ttl))
	if err != nil {
		return baton.NodeLease{}, err
	}
	defer d.mu.Unlock()
	now := d.now()
	n := d.liveNode(nl, now)
	if n == nil {
		return baton.NodeLease{}, fmt.Errorf("renew node %s epoch %d: %w", nl.Node, nl.Epoch, baton.ErrLeaseLost)
	}
	n.lease.ExpiresAt = now.Add(ttl)
	out := n.lease
	out.Remaining = ttl
	return out, nil
}

// ReleaseNode ends a live node lease and every topic lease under it.
func (s *Store) ReleaseNode(ctx context.Context, nl baton.NodeLease, reason baton.ReleaseReason) ([]baton.ReleaseRecord, error) {
	d, err := s.begin(ctx, "release node", baton.ValidateNodeRelease(nl, reason))
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	now := d.now()
	n := d.liveNode(nl, now)
	if n == nil {
		return nil, fmt.Errorf("release node %s epoch %d: %w", nl.Node, nl.Epoch, baton.ErrLeaseLost)
	}
	return d.endNode(n, reason, now), nil
}

// ExpireNode ends a lapsed node lease and records its topics.
func (s *Store) ExpireNode(ctx context.Context, node string) ([]baton.ReleaseRecord, error) {
	d, err := s.begin(ctx, "expire node", baton.ValidateLeave(node))
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	now := d.now()
	n := d.nodes[node]
	if n.live(now) {
		return nil, fmt.Errorf("expire node %s: epoch %d is live: %w", node, n.lease.Epoch, baton.ErrLeaseHeld)
	}
	recs, ok := d.endLapsed(n, now)
	if !ok {
		return nil, fmt.Errorf("expire node %s: no lapsed node lease: %w", node, baton.ErrNotFound)
	}
	return recs, nil
}

// NodeLeases lists the node leases not ended.
func (s *Store) NodeLeases(ctx context.Context) ([]baton.NodeLease, error) {
	d, err := s.begin(ctx, "node leases", nil)
	if err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	now := d.now()
	var out []baton.NodeLease
	for _, n := range d.nodes {
		if n.ended {
			continue
		}
		l := n.lease
		l.Remaining = l.ExpiresAt.Sub(now)
		l.Leases = len(n.topics)
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out, nil
}

// Acquire takes the topic's lock under a live node lease.
func (s *Store) Acquire(ctx context.Context, name string, nl baton.NodeLease) (baton.Lease, error) {
	d, err := s.begin(ctx, "acquire", baton.ValidateLease(name, nl))
	if err != nil {
		return baton.Lease{}, err
	}
	defer d.mu.Unlock()
	now := d.now()
	n := d.nodes[nl.Node]
	if n == nil || n.lease.Epoch != nl.Epoch || !n.live(now) {
		return baton.Lease{}, fmt.Errorf("acquire %s: node lease %s epoch %d is not live: %w", name, nl.Node, nl.Epoch, baton.ErrLeaseLost)
	}
	if t := d.topics[name]; t != nil && t.deleted {
		return baton.Lease{}, fmt.Errorf("acquire %s: topic deleted: %w", name, baton.ErrNotFound)
	}
	t, created := d.topicForWrite(name)
	if d.live(t, now) {
		return baton.Lease{}, fmt.Errorf("acquire %s: held by %s epoch %d: %w", name, t.lease.Holder, t.lease.Epoch, baton.ErrLeaseHeld)
	}
	d.recordExpired(t, now)
	prev := t.lease.Epoch
	t.lease = baton.Lease{Topic: name, Holder: nl.Node, Epoch: prev + 1, NodeEpoch: nl.Epoch, AcquiredAt: now, ExpiresAt: n.lease.ExpiresAt}
	t.recorded = false
	n.topics[name] = struct{}{}
	if k := len(t.records); k > 0 && t.records[k-1].Epoch == prev {
		r := &t.records[k-1]
		r.Successor, r.SuccessorEpoch, r.SuccessorAt = nl.Node, t.lease.Epoch, now
	}
	sig := baton.SignalLock
	if created {
		sig |= baton.SignalTopic
	}
	d.sig.Notify(name, sig)
	l := t.lease
	l.Remaining = l.ExpiresAt.Sub(now)
	cur := t.cursor
	cur.Topic = name
	l.Cursor = &cur
	return l, nil
}

// Release ends a live lease now with reason released or failed.
func (s *Store) Release(ctx context.Context, l baton.Lease, reason baton.ReleaseReason) error {
	d, err := s.begin(ctx, "release", baton.ValidateRelease(l, reason))
	if err != nil {
		return err
	}
	defer d.mu.Unlock()
	now := d.now()
	t := d.topics[l.Topic]
	if t == nil {
		return fmt.Errorf("release %s epoch %d: %w", l.Topic, l.Epoch, baton.ErrLeaseLost)
	}
	if d.holding(l.Topic, l.Holder, l.Epoch, now) == nil {
		d.recordExpired(t, now)
		return fmt.Errorf("release %s epoch %d: %w", l.Topic, l.Epoch, baton.ErrLeaseLost)
	}
	d.record(t, reason, now, baton.SignalLock)
	return nil
}

// Expire writes and returns the record of a lapsed lease that has none.
func (s *Store) Expire(ctx context.Context, name string) (baton.ReleaseRecord, error) {
	d, err := s.begin(ctx, "expire", baton.ValidTopic(name))
	if err != nil {
		return baton.ReleaseRecord{}, err
	}
	defer d.mu.Unlock()
	now := d.now()
	t := d.topics[name]
	if t == nil {
		return baton.ReleaseRecord{}, fmt.Errorf("expire %s: no lease: %w", name, baton.ErrNotFound)
	}
	if d.live(t, now) {
		return baton.ReleaseRecord{}, fmt.Errorf("expire %s: epoch %d is live: %w", name, t.lease.Epoch, baton.ErrLeaseHeld)
	}
	if !d.recordExpired(t, now) {
		return baton.ReleaseRecord{}, fmt.Errorf("expire %s: no lapsed lease without record: %w", name, baton.ErrNotFound)
	}
	return t.records[len(t.records)-1], nil
}

// Lock reads the lock's attributes.
func (s *Store) Lock(ctx context.Context, name string) (baton.LockState, error) {
	d, err := s.begin(ctx, "lock", baton.ValidTopic(name))
	if err != nil {
		return baton.LockState{}, err
	}
	defer d.mu.Unlock()
	st := baton.LockState{Topic: name}
	t := d.topics[name]
	if t == nil || t.lease.Epoch == 0 || t.deleted {
		return st, nil
	}
	now := d.now()
	st.Held = d.live(t, now)
	st.Lease = t.lease
	if !t.recorded {
		st.Lease.ExpiresAt = d.expiresAt(t)
	}
	if st.Held {
		st.Lease.Remaining = st.Lease.ExpiresAt.Sub(now)
	}
	return st, nil
}

// Handovers lists the topic's release records, newest first.
func (s *Store) Handovers(ctx context.Context, name string, limit int) ([]baton.ReleaseRecord, error) {
	t, err := s.readTopic(ctx, "handovers", name, limit)
	if t == nil {
		return nil, err
	}
	defer s.d.mu.Unlock()
	out := make([]baton.ReleaseRecord, 0, min(limit, len(t.records)))
	for i := len(t.records) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, t.records[i])
	}
	return out, nil
}
