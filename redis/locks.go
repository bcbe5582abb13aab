package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/baton-pub/baton"
)

// micros converts a duration to whole microseconds, rounding up so that a
// lease is never shorter than asked.
func micros(d time.Duration) int64 {
	return int64((d + time.Microsecond - 1) / time.Microsecond)
}

// fromMicros converts a store time in microseconds; 0 is the zero time.
func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

func parseMicros(s string) time.Time {
	n, _ := strconv.ParseInt(s, 10, 64)
	return fromMicros(n)
}

// heldFor is the Remaining of a live lease, us microseconds before its
// ExpiresAt. On Redis Cluster a bucket may keep a lease live a moment past
// the node lease's expiry, which it reports (lua/copynode.lua): the lease
// is live, so Remaining stays positive.
func heldFor(us int64) time.Duration {
	return max(time.Duration(us)*time.Microsecond, time.Microsecond)
}

// Acquire implements baton.Locks: one script checks that nl is live and the
// lock free, and takes it under nl.
func (s *Store) Acquire(ctx context.Context, topic string, nl baton.NodeLease) (baton.Lease, error) {
	if err := baton.ValidateLease(topic, nl); err != nil {
		return baton.Lease{}, err
	}
	acquire := func() ([]any, error) {
		return s.run(ctx, scriptAcquire, true, append(s.k.lockKeys(topic), s.k.meta(topic), s.k.queue(topic), s.k.hashes(topic)),
			topic, s.k.events(topic), s.k.space(topic), nl.Node, nl.Epoch, acquireItems)
	}
	r, err := acquire()
	if err == nil && replyStr(r, 0) == "lost" && s.k.cluster() {
		// The bucket has no live copy of nl (a push failed, or another
		// handle of the store holds the node lease): copy it from {_nodes}
		// if it is live there, and try once more.
		var ok bool
		if ok, err = s.copyNode(ctx, s.k.bucket(topic), nl); err == nil && ok {
			r, err = acquire()
		}
	}
	if err != nil {
		return baton.Lease{}, fmt.Errorf("acquire %s: %w", topic, err)
	}
	switch replyStr(r, 0) {
	case "ok":
		// Listed after the script, unless a delete came in between
		// (delete.go): the lease is taken either way.
		if err := s.listAcquired(ctx, topic); err != nil {
			s.log.Warn("list acquired topic", "topic", topic, "err", err)
		}
		s.locks.Forget(topic) // its message comes later (heardlock.go)
		s.countsChanged()
		s.sig.Notify(topic, baton.SignalLock)
		acq, exp := replyInt(r, 2), replyInt(r, 3)
		l := baton.Lease{Topic: topic, Holder: nl.Node, Epoch: replyUint(r, 1), NodeEpoch: nl.Epoch,
			AcquiredAt: fromMicros(acq), ExpiresAt: fromMicros(exp),
			Remaining: heldFor(exp - acq)}
		if cur, err := acquiredCursor(topic, r); err == nil {
			l.Cursor = &cur
			if l.Resume, err = acquiredResume(topic, cur, r); err != nil {
				s.log.Warn("acquire: items in the reply", "topic", topic, "err", err) // read again by the holder
			}
		} else {
			s.log.Warn("acquire: cursor in the reply", "topic", topic, "err", err) // read again by the holder
		}
		return l, nil
	case "held":
		return baton.Lease{}, fmt.Errorf("acquire %s: held by %s at epoch %s for %v more: %w",
			topic, replyStr(r, 1), replyStr(r, 2), time.Duration(replyInt(r, 3))*time.Microsecond, baton.ErrLeaseHeld)
	case "deleted":
		return baton.Lease{}, fmt.Errorf("acquire %s: topic deleted: %w", topic, baton.ErrNotFound)
	case "lost":
		return baton.Lease{}, fmt.Errorf("acquire %s under node lease %s epoch %d: %s (its latest epoch is %s): %w",
			topic, nl.Node, nl.Epoch, replyStr(r, 2), replyStr(r, 1), baton.ErrLeaseLost)
	}
	return baton.Lease{}, fmt.Errorf("acquire %s: unexpected reply %v", topic, r)
}

// acquiredCursor decodes the cursor an acquire script replied with (r[4:8]).
func acquiredCursor(topic string, r []any) (baton.Cursor, error) {
	if len(r) < 8 {
		return baton.Cursor{}, fmt.Errorf("acquire %s: no cursor in the reply", topic)
	}
	cur, err := cursorOf(topic, r[4:8])
	if err != nil {
		return cur, fmt.Errorf("acquire %s: cursor: %w", topic, err)
	}
	return cur, nil
}

// acquireItems is how many items after the cursor an acquire reads for the
// new holder's first commit (baton.Resume): enough for a topic that was
// keeping up, while one with a backlog reads the rest in growing batches.
const acquireItems = 64

// acquiredResume decodes what an acquire script read after the cursor
// (r[8:12]): nil if the reply has none.
func acquiredResume(topic string, cur baton.Cursor, r []any) (*baton.Resume, error) {
	if len(r) < 12 {
		return nil, nil
	}
	res := &baton.Resume{Checked: replyInt(r, 8) == 1, Asked: int(replyInt(r, 9))}
	if res.Asked == 0 {
		return res, nil
	}
	within, _ := r[10].([]any)
	after, _ := r[11].([]any)
	items, err := decodeItems(topic, append(within, after...), cur.Seq, res.Asked)
	if err != nil {
		return nil, err
	}
	res.Items = items
	return res, nil
}

func lostErr(op string, lease baton.Lease, r []any) error {
	return fmt.Errorf("%s %s epoch %d by %s: %s (the lock is at epoch %s by %q): %w",
		op, lease.Topic, lease.Epoch, lease.Holder, replyStr(r, 3), replyStr(r, 1), replyStr(r, 2), baton.ErrLeaseLost)
}

// Release implements baton.Locks.
func (s *Store) Release(ctx context.Context, lease baton.Lease, reason baton.ReleaseReason) error {
	if err := baton.ValidateRelease(lease, reason); err != nil {
		return err
	}
	r, err := s.run(ctx, scriptRelease, true, s.k.lockKeys(lease.Topic),
		lease.Topic, s.k.events(lease.Topic), s.k.space(lease.Topic), lease.Holder, lease.Epoch, string(reason))
	if err != nil {
		return fmt.Errorf("release %s epoch %d: %w", lease.Topic, lease.Epoch, err)
	}
	s.locks.Forget(lease.Topic)
	s.countsChanged()
	s.sig.Notify(lease.Topic, baton.SignalLock)
	switch replyStr(r, 0) {
	case "ok":
		return nil
	case "lost":
		return lostErr("release", lease, r)
	}
	return fmt.Errorf("release %s: unexpected reply %v", lease.Topic, r)
}

// Expire implements baton.Locks.
func (s *Store) Expire(ctx context.Context, topic string) (baton.ReleaseRecord, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.ReleaseRecord{}, err
	}
	r, err := s.run(ctx, scriptExpire, true, s.k.lockKeys(topic), topic, s.k.events(topic), s.k.space(topic))
	if err != nil {
		return baton.ReleaseRecord{}, fmt.Errorf("expire %s: %w", topic, err)
	}
	switch replyStr(r, 0) {
	case "ok":
		s.locks.Forget(topic)
		s.countsChanged()
		s.sig.Notify(topic, baton.SignalLock)
		return decodeRecord(topic, replyStr(r, 1))
	case "held":
		return baton.ReleaseRecord{}, fmt.Errorf("expire %s: held by %s at epoch %s for %v more: %w",
			topic, replyStr(r, 1), replyStr(r, 2), time.Duration(replyInt(r, 3))*time.Microsecond, baton.ErrLeaseHeld)
	case "notfound":
		return baton.ReleaseRecord{}, fmt.Errorf("expire %s: no lapsed lease without a record: %w", topic, baton.ErrNotFound)
	}
	return baton.ReleaseRecord{}, fmt.Errorf("expire %s: unexpected reply %v", topic, r)
}

// Lock implements baton.Locks (confirmed by the replicas under wait_replicas:
// confirm.go): one read-only script reads the lock, the node
// lease it is held under (whose expiry is the lease's) and the server's
// clock.
func (s *Store) Lock(ctx context.Context, topic string) (baton.LockState, error) {
	if err := baton.ValidTopic(topic); err != nil {
		return baton.LockState{}, err
	}
	r, err := s.runRead(ctx, scriptLock, topic, []string{s.k.lock(topic)}, s.k.space(topic))
	if err != nil {
		return baton.LockState{}, fmt.Errorf("read lock %s: %w", topic, err)
	}
	st := baton.LockState{Topic: topic}
	epoch := replyUint(r, 1)
	if epoch == 0 {
		return st, nil
	}
	exp, now := replyInt(r, 4), replyInt(r, 6)
	st.Held = replyInt(r, 5) == 1
	st.Lease = baton.Lease{Topic: topic, Holder: replyStr(r, 0), Epoch: epoch, NodeEpoch: replyUint(r, 2),
		AcquiredAt: fromMicros(replyInt(r, 3)), ExpiresAt: fromMicros(exp)}
	if st.Held {
		st.Lease.Remaining = heldFor(exp - now)
	}
	return st, nil
}

// Handovers implements baton.Locks: the release records, newest first.
func (s *Store) Handovers(ctx context.Context, topic string, limit int) ([]baton.ReleaseRecord, error) {
	n, err := checkRead(topic, limit)
	if err != nil {
		return nil, err
	}
	if err := s.errClosed(); err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	rc := pipe.LRange(ctx, s.k.releases(topic), 0, n-1)
	if err := s.send(ctx, pipe); err != nil {
		return nil, fmt.Errorf("list handovers of %s: %w", topic, s.mapErr(err))
	}
	var out []baton.ReleaseRecord
	for _, js := range rc.Val() {
		rec, err := decodeRecord(topic, js)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// recordJSON is a release record as the scripts store it (cjson, with every
// number as a string so that no precision is lost).
type recordJSON struct {
	Topic          string `json:"topic"`
	Holder         string `json:"holder"`
	Epoch          string `json:"epoch"`
	Reason         string `json:"reason"`
	AtUs           string `json:"at_us"`
	LastSeq        string `json:"last_seq"`
	LastHash       string `json:"last_hash"`
	Successor      string `json:"successor"`
	SuccessorEpoch string `json:"successor_epoch"`
	SuccessorUs    string `json:"successor_us"`
}

func decodeRecord(topic, js string) (baton.ReleaseRecord, error) {
	var j recordJSON
	if err := json.Unmarshal([]byte(js), &j); err != nil {
		return baton.ReleaseRecord{}, fmt.Errorf("decode release record of %s: %w", topic, err)
	}
	if topic == "" { // a record of a node lease's end names its topic
		topic = j.Topic
	}
	rec := baton.ReleaseRecord{Topic: topic, Holder: j.Holder, Reason: baton.ReleaseReason(j.Reason),
		At: parseMicros(j.AtUs), Successor: j.Successor, SuccessorAt: parseMicros(j.SuccessorUs)}
	rec.Epoch, _ = strconv.ParseUint(j.Epoch, 10, 64)
	rec.LastSeq, _ = strconv.ParseUint(j.LastSeq, 10, 64)
	rec.SuccessorEpoch, _ = strconv.ParseUint(j.SuccessorEpoch, 10, 64)
	if j.LastHash != "" {
		h, err := baton.ParseHash(j.LastHash)
		if err != nil {
			return rec, fmt.Errorf("decode release record of %s: %w", topic, err)
		}
		rec.LastHash = h
	}
	return rec, nil
}

// register adds topic to the topics set the first time this Store uses it,
// and announces it if it is new. It runs outside the topic's scripts because
// the topics set is a global key (another Cluster slot).
func (s *Store) register(ctx context.Context, topic string) error {
	if _, ok := s.known.Load(topic); ok {
		return nil
	}
	if err := s.errClosed(); err != nil {
		return err
	}
	added, err := s.rdb.SAdd(ctx, s.k.topics(), topic).Result()
	if err != nil {
		return fmt.Errorf("register topic: %w", s.mapErr(err))
	}
	if added == 1 {
		if err := s.rdb.Publish(ctx, s.k.topicsChannel(), topic).Err(); err != nil {
			// The topic is registered; a standby that missed the message
			// finds it at its next Topics read.
			s.log.Warn("announce new topic", "topic", topic, "err", err)
		}
		s.sig.Notify(topic, baton.SignalTopic)
	}
	s.known.Store(topic, struct{}{})
	return nil
}

// Field decoding for HMGET replies (nil for a missing field).

func fieldStr(v any) string {
	s, _ := v.(string)
	return s
}

func fieldUint(v any) uint64 {
	n, _ := strconv.ParseUint(fieldStr(v), 10, 64)
	return n
}

func fieldInt(v any) int64 {
	n, _ := strconv.ParseInt(fieldStr(v), 10, 64)
	return n
}
