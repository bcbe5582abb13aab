package memstore

import (
	"context"
	"fmt"
	"time"

	"github.com/baton-pub/baton"
)

func (t *topic) live(now time.Time) bool {
	return t.lease.Epoch > 0 && !t.released && now.Before(t.lease.ExpiresAt)
}

// recordExpired writes the release record of a lapsed lease that has none
// and reports whether it did. Callers hold mu and signal SignalLock.
func (t *topic) recordExpired(now time.Time) bool {
	if t.lease.Epoch == 0 || t.released || t.recorded || now.Before(t.lease.ExpiresAt) {
		return false
	}
	t.recorded = true
	t.records = append(t.records, baton.ReleaseRecord{
		Topic:    t.name,
		Holder:   t.lease.Holder,
		Epoch:    t.lease.Epoch,
		Reason:   baton.ReasonExpired,
		At:       t.lease.ExpiresAt, // the instant the lease ended
		LastSeq:  t.cursor.Seq,
		LastHash: t.cursor.Hash,
	})
	return true
}

// holding returns the topic if (holder, epoch) is its live lease, else nil.
// Callers hold mu.
func (d *data) holding(name, holder string, epoch uint64, now time.Time) *topic {
	if t := d.topics[name]; t != nil && t.holds(baton.Lease{Holder: holder, Epoch: epoch}, now) {
		return t
	}
	return nil
}

// holds reports whether l names the topic's live lease.
func (t *topic) holds(l baton.Lease, now time.Time) bool {
	return l.Epoch != 0 && t.lease.Epoch == l.Epoch && t.lease.Holder == l.Holder && t.live(now)
}

// Acquire takes the topic's lock if no lease is live.
func (s *Store) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (baton.Lease, error) {
	d, err := s.begin(ctx, "acquire", baton.ValidateLease(name, holder, ttl))
	if err != nil {
		return baton.Lease{}, err
	}
	defer d.mu.Unlock()
	now := d.now()
	t, created := d.topicForWrite(name)
	if t.live(now) {
		return baton.Lease{}, fmt.Errorf("acquire %s: held by %s epoch %d: %w", name, t.lease.Holder, t.lease.Epoch, baton.ErrLeaseHeld)
	}
	t.recordExpired(now)
	prev := t.lease.Epoch
	t.lease = baton.Lease{Topic: name, Holder: holder, Epoch: prev + 1, AcquiredAt: now, ExpiresAt: now.Add(ttl)}
	t.released, t.recorded = false, false
	if n := len(t.records); n > 0 && t.records[n-1].Epoch == prev {
		r := &t.records[n-1]
		r.Successor, r.SuccessorEpoch, r.SuccessorAt = holder, t.lease.Epoch, now
	}
	sig := baton.SignalLock
	if created {
		sig |= baton.SignalTopic
	}
	d.sig.Notify(name, sig)
	l := t.lease
	l.Remaining = ttl
	return l, nil
}

// Renew extends a live lease to now+ttl.
func (s *Store) Renew(ctx context.Context, l baton.Lease, ttl time.Duration) (baton.Lease, error) {
	d, err := s.begin(ctx, "renew", baton.ValidateLease(l.Topic, l.Holder, ttl))
	if err != nil {
		return baton.Lease{}, err
	}
	defer d.mu.Unlock()
	now := d.now()
	t := d.topics[l.Topic]
	if t == nil {
		return baton.Lease{}, fmt.Errorf("renew %s epoch %d: %w", l.Topic, l.Epoch, baton.ErrLeaseLost)
	}
	if !t.holds(l, now) {
		if t.recordExpired(now) {
			d.sig.Notify(l.Topic, baton.SignalLock)
		}
		return baton.Lease{}, fmt.Errorf("renew %s epoch %d: %w", l.Topic, l.Epoch, baton.ErrLeaseLost)
	}
	t.lease.ExpiresAt = now.Add(ttl)
	out := t.lease
	out.Remaining = ttl
	return out, nil
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
	if !t.holds(l, now) {
		if t.recordExpired(now) {
			d.sig.Notify(l.Topic, baton.SignalLock)
		}
		return fmt.Errorf("release %s epoch %d: %w", l.Topic, l.Epoch, baton.ErrLeaseLost)
	}
	t.released, t.recorded = true, true
	t.records = append(t.records, baton.ReleaseRecord{
		Topic: l.Topic, Holder: l.Holder, Epoch: l.Epoch, Reason: reason, At: now,
		LastSeq: t.cursor.Seq, LastHash: t.cursor.Hash,
	})
	d.sig.Notify(l.Topic, baton.SignalLock)
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
	if t.live(now) {
		return baton.ReleaseRecord{}, fmt.Errorf("expire %s: epoch %d is live: %w", name, t.lease.Epoch, baton.ErrLeaseHeld)
	}
	if !t.recordExpired(now) {
		return baton.ReleaseRecord{}, fmt.Errorf("expire %s: no lapsed lease without record: %w", name, baton.ErrNotFound)
	}
	d.sig.Notify(name, baton.SignalLock)
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
	if t == nil || t.lease.Epoch == 0 {
		return st, nil
	}
	now := d.now()
	st.Held = t.live(now)
	st.Lease = t.lease
	if st.Held {
		st.Lease.Remaining = t.lease.ExpiresAt.Sub(now)
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
