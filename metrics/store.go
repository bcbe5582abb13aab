package metrics

import (
	"context"
	"time"

	"github.com/baton-pub/baton"
)

// Store returns st with every operation timed and counted, and the data
// path's events (appends, commits, leases, checkpoints) counted from the
// operations' results: one place that sees them all, whichever component
// made the call.
func (m *Metrics) Store(st baton.Store) baton.Store { return &store{Store: st, m: m} }

type store struct {
	baton.Store
	m *Metrics
}

var _ baton.Store = (*store)(nil)

// done records an operation that began at start and ended with err.
func (s *store) done(op string, start time.Time, err error) {
	s.m.storeSeconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.storeErrors.WithLabelValues(op, baton.ErrorCode(err)).Inc()
	}
}

func (s *store) AcquireNode(ctx context.Context, node string, ttl time.Duration) (baton.NodeLease, error) {
	start := time.Now()
	nl, err := s.Store.AcquireNode(ctx, node, ttl)
	s.done("acquire_node", start, err)
	return nl, err
}

func (s *store) RenewNode(ctx context.Context, nl baton.NodeLease, ttl time.Duration) (baton.NodeLease, error) {
	start := time.Now()
	l, err := s.Store.RenewNode(ctx, nl, ttl)
	s.done("renew_node", start, err)
	if err != nil {
		s.m.renewFailed.Inc()
	}
	return l, err
}

func (s *store) ReleaseNode(ctx context.Context, nl baton.NodeLease, reason baton.ReleaseReason) ([]baton.ReleaseRecord, error) {
	start := time.Now()
	recs, err := s.Store.ReleaseNode(ctx, nl, reason)
	s.done("release_node", start, err)
	if err == nil {
		s.m.released.WithLabelValues(string(reason)).Add(float64(len(recs)))
	}
	return recs, err
}

func (s *store) ExpireNode(ctx context.Context, node string) ([]baton.ReleaseRecord, error) {
	start := time.Now()
	recs, err := s.Store.ExpireNode(ctx, node)
	s.done("expire_node", start, ignoreExpected(err))
	return recs, err
}

func (s *store) NodeLeases(ctx context.Context) ([]baton.NodeLease, error) {
	start := time.Now()
	r, err := s.Store.NodeLeases(ctx)
	s.done("node_leases", start, err)
	return r, err
}

func (s *store) Acquire(ctx context.Context, topic string, nl baton.NodeLease) (baton.Lease, error) {
	start := time.Now()
	l, err := s.Store.Acquire(ctx, topic, nl)
	s.done("acquire", start, err)
	if err == nil {
		s.m.acquired.Inc()
	}
	return l, err
}

func (s *store) Release(ctx context.Context, lease baton.Lease, reason baton.ReleaseReason) error {
	start := time.Now()
	err := s.Store.Release(ctx, lease, reason)
	s.done("release", start, err)
	if err == nil {
		s.m.released.WithLabelValues(string(reason)).Inc()
	}
	return err
}

func (s *store) Expire(ctx context.Context, topic string) (baton.ReleaseRecord, error) {
	start := time.Now()
	r, err := s.Store.Expire(ctx, topic)
	s.done("expire", start, ignoreExpected(err))
	return r, err
}

func (s *store) Lock(ctx context.Context, topic string) (baton.LockState, error) {
	start := time.Now()
	l, err := s.Store.Lock(ctx, topic)
	s.done("lock", start, err)
	return l, err
}

func (s *store) Handovers(ctx context.Context, topic string, limit int) ([]baton.ReleaseRecord, error) {
	start := time.Now()
	r, err := s.Store.Handovers(ctx, topic, limit)
	s.done("handovers", start, err)
	return r, err
}

func (s *store) Append(ctx context.Context, topic string, updates []baton.Update) ([]baton.Receipt, error) {
	start := time.Now()
	rs, err := s.Store.Append(ctx, topic, updates)
	s.done("append", start, err)
	if err == nil {
		n := 0
		for _, r := range rs {
			if !r.Duplicate {
				n++
			}
		}
		s.m.appended.WithLabelValues(s.m.topic(topic)).Add(float64(n))
	}
	return rs, err
}

func (s *store) Items(ctx context.Context, topic string, after uint64, limit int) ([]baton.Item, error) {
	start := time.Now()
	r, err := s.Store.Items(ctx, topic, after, limit)
	s.done("items", start, ignoreExpected(err))
	return r, err
}

func (s *store) SeqOfHash(ctx context.Context, topic string, h baton.Hash) (uint64, error) {
	start := time.Now()
	r, err := s.Store.SeqOfHash(ctx, topic, h)
	s.done("seq_of_hash", start, err)
	return r, err
}

func (s *store) Topics(ctx context.Context) ([]string, error) {
	start := time.Now()
	r, err := s.Store.Topics(ctx)
	s.done("topics", start, err)
	return r, err
}

func (s *store) Topic(ctx context.Context, topic string) (baton.TopicInfo, error) {
	start := time.Now()
	r, err := s.Store.Topic(ctx, topic)
	s.done("topic", start, ignoreExpected(err))
	return r, err
}

func (s *store) Trim(ctx context.Context, topic string, before uint64) (int, error) {
	start := time.Now()
	r, err := s.Store.Trim(ctx, topic, before)
	s.done("trim", start, err)
	return r, err
}

func (s *store) Commit(ctx context.Context, c baton.Commit) (baton.Cursor, error) {
	start := time.Now()
	cur, err := s.Store.Commit(ctx, c)
	s.done("commit", start, err)
	if err == nil {
		s.committed(c)
	}
	return cur, err
}

// committed counts a commit made, by Commit or on append.
func (s *store) committed(c baton.Commit) {
	s.m.published.WithLabelValues(s.m.topic(c.Topic)).Add(float64(len(c.Items)))
	s.m.batch.Observe(float64(len(c.Items)))
	if c.Checkpoint != nil {
		s.m.checkpoints.Inc()
	}
}

func (s *store) Cursor(ctx context.Context, topic string) (baton.Cursor, error) {
	start := time.Now()
	r, err := s.Store.Cursor(ctx, topic)
	s.done("cursor", start, err)
	return r, err
}

func (s *store) Published(ctx context.Context, topic string, after uint64, limit int) ([]baton.Published, error) {
	start := time.Now()
	r, err := s.Store.Published(ctx, topic, after, limit)
	s.done("published", start, ignoreExpected(err))
	return r, err
}

func (s *store) Leaves(ctx context.Context, topic string, after uint64, limit int) ([]baton.Leaf, error) {
	start := time.Now()
	r, err := s.Store.Leaves(ctx, topic, after, limit)
	s.done("leaves", start, err)
	return r, err
}

func (s *store) AddCheckpoint(ctx context.Context, cp baton.Checkpoint) error {
	start := time.Now()
	err := s.Store.AddCheckpoint(ctx, cp)
	s.done("add_checkpoint", start, err)
	if err == nil {
		s.m.checkpoints.Inc()
	}
	return err
}

func (s *store) Checkpoint(ctx context.Context, topic string) (baton.Checkpoint, error) {
	start := time.Now()
	r, err := s.Store.Checkpoint(ctx, topic)
	s.done("checkpoint", start, ignoreExpected(err))
	return r, err
}

func (s *store) Checkpoints(ctx context.Context, topic string, after uint64, limit int) ([]baton.Checkpoint, error) {
	start := time.Now()
	r, err := s.Store.Checkpoints(ctx, topic, after, limit)
	s.done("checkpoints", start, err)
	return r, err
}

func (s *store) Cosign(ctx context.Context, topic string, size uint64, cs baton.Cosignature) error {
	start := time.Now()
	err := s.Store.Cosign(ctx, topic, size, cs)
	s.done("cosign", start, err)
	if err == nil {
		s.m.cosigned.Inc()
	}
	return err
}

func (s *store) Heartbeat(ctx context.Context, mb baton.Member, ttl time.Duration) error {
	start := time.Now()
	err := s.Store.Heartbeat(ctx, mb, ttl)
	s.done("heartbeat", start, err)
	return err
}

func (s *store) Ping(ctx context.Context) error {
	start := time.Now()
	err := s.Store.Ping(ctx)
	s.done("ping", start, err)
	return err
}

// ignoreExpected drops the answers that are part of normal work (nothing
// to expire yet, nothing kept there, no checkpoint yet) from the error
// counts.
func ignoreExpected(err error) error {
	switch baton.ErrorCode(err) {
	case baton.CodeNotFound, baton.CodeGone, baton.CodeConflict:
		return nil
	}
	return err
}

// RecentPublished implements baton.RecentPublished when the store does
// (no store operation: it answers from memory).
func (s *store) RecentPublished(topic string, after uint64, limit int) ([]baton.Published, bool) {
	if rp, ok := s.Store.(baton.RecentPublished); ok {
		return rp.RecentPublished(topic, after, limit)
	}
	return nil, false
}

// RecentLock implements baton.RecentLock when the store does.
func (s *store) RecentLock(topic string) (string, uint64, bool) {
	if rl, ok := s.Store.(baton.RecentLock); ok {
		return rl.RecentLock(topic)
	}
	return "", 0, false
}

// PublishOnAppend implements baton.AppendPublisher, whether or not the store
// does: a store that cannot publish on append never proposes, and the
// publisher commits as before. The commits made on append count as
// Commit's do (items published, batch sizes, checkpoints); their time is
// the append's.
func (s *store) PublishOnAppend(topic string, p baton.Proposer) (stop func()) {
	ap, ok := s.Store.(baton.AppendPublisher)
	if !ok {
		return func() {}
	}
	cp := countedProposer{Proposer: p, s: s}
	if rp, ok := p.(baton.RestingProposer); ok {
		return ap.PublishOnAppend(topic, countedResting{countedProposer: cp, rest: rp})
	}
	return ap.PublishOnAppend(topic, cp)
}

// countedProposer counts the commits made on append.
type countedProposer struct {
	baton.Proposer
	s *store
}

// countedResting is a countedProposer that is a baton.RestingProposer, as
// the proposer it wraps is (Redis needs it to propose).
type countedResting struct {
	countedProposer
	rest baton.RestingProposer
}

func (c countedResting) Resting() (uint64, bool) { return c.rest.Resting() }
func (c countedResting) HeldLease() baton.Lease  { return c.rest.HeldLease() }

func (c countedProposer) Settled(cm baton.Commit, cur baton.Cursor, err error) {
	if err == nil {
		c.s.committed(cm)
		c.s.m.onAppend.Add(float64(len(cm.Items)))
	}
	c.Proposer.Settled(cm, cur, err)
}
