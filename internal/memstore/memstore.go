// Package memstore is an in-memory baton.Store. It passes the conformance
// suite (package storetest) and stands in for a real engine in the unit
// tests of what sits above the store: the elector, the publisher, the hub.
//
// All state lives in one process behind one mutex; expiry is lazy (a lapsed
// lease or member is noticed by the next call that looks at it), and times
// come from the injected clock, so a test can drive expiry with a manual
// clock. There is no background goroutine: a lapsed lease is signalled
// (SignalLock) only when a call writes its expired record (Acquire, Renew,
// Release or Expire), as the contract allows. Several handles onto the same
// data (Handle) stand for several processes sharing one store.
package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
)

// Store is one handle onto an in-memory store.
type Store struct {
	d      *data
	closed atomic.Bool
}

var _ baton.Store = (*Store)(nil)

// data is what the handles share. mu guards everything below it, including
// the subscriptions; wake-ups are non-blocking sends made with mu held.
type data struct {
	clock baton.Clock

	mu      sync.Mutex
	topics  map[string]*topic
	members map[string]baton.Member
	keys    map[[2]string]struct{} // {node, public key bytes}: every key ever registered
	subs    map[*sub]struct{}
}

// topic is one topic's lock, queue, cursor and ledger. A topic exists once it
// was appended to or locked.
type topic struct {
	name string

	// The lock: the latest lease (Epoch 0 if never taken), whether it was
	// released, and whether its release record was written.
	lease    baton.Lease
	released bool
	recorded bool
	records  []baton.ReleaseRecord // oldest first

	// The queue: kept items are trimmed+1 .. last, in order.
	items   []baton.Item
	trimmed uint64
	last    uint64
	byMsgID map[string]baton.Receipt
	byHash  map[baton.Hash]uint64

	cursor baton.Cursor
	pubs   map[uint64]publication // seq -> publication, for kept items
	leaves []baton.Leaf
	cps    []baton.Checkpoint // by size ascending
}

type publication struct {
	epoch     uint64
	publisher string
	at        time.Time
}

// New returns an empty store on clock (the system clock if nil).
func New(clock baton.Clock) *Store {
	if clock == nil {
		clock = baton.SystemClock{}
	}
	return &Store{d: &data{
		clock:   clock,
		topics:  make(map[string]*topic),
		members: make(map[string]baton.Member),
		subs:    make(map[*sub]struct{}),
	}}
}

// Handle returns another handle onto the same data, as a second process
// sharing the store would have. Closing one handle leaves the others open.
func (s *Store) Handle() *Store { return &Store{d: s.d} }

// Ping reports ErrClosed once the handle is closed.
func (s *Store) Ping(ctx context.Context) error { return s.check(ctx, "ping") }

// Close closes the handle. It is idempotent.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *Store) check(ctx context.Context, op string) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, baton.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// now reads the clock without its monotonic reading, as a shared store
// would: expiry compares wall times.
func (d *data) now() time.Time { return d.clock.Now().Round(0) }

// topicForWrite returns the topic, creating it; created reports whether it
// is new. Callers hold mu.
func (d *data) topicForWrite(name string) (t *topic, created bool) {
	if t := d.topics[name]; t != nil {
		return t, false
	}
	t = &topic{
		name:    name,
		byMsgID: make(map[string]baton.Receipt),
		byHash:  make(map[baton.Hash]uint64),
		pubs:    make(map[uint64]publication),
	}
	d.topics[name] = t
	return t, true
}

// Locks.

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

// holds reports whether l names the topic's live lease.
func (t *topic) holds(l baton.Lease, now time.Time) bool {
	return l.Epoch != 0 && t.lease.Epoch == l.Epoch && t.lease.Holder == l.Holder && t.live(now)
}

// Acquire takes the topic's lock if no lease is live.
func (s *Store) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (baton.Lease, error) {
	if err := s.check(ctx, "acquire"); err != nil {
		return baton.Lease{}, err
	}
	if err := baton.ValidTopic(name); err != nil {
		return baton.Lease{}, fmt.Errorf("acquire: %w", err)
	}
	if holder == "" {
		return baton.Lease{}, fmt.Errorf("acquire: %w", baton.Invalidf("holder", "must not be empty"))
	}
	if ttl <= 0 {
		return baton.Lease{}, fmt.Errorf("acquire: %w", baton.Invalidf("ttl", "must be positive, got %v", ttl))
	}
	d := s.d
	d.mu.Lock()
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
	d.notify(name, sig)
	l := t.lease
	l.Remaining = ttl
	return l, nil
}

// Renew extends a live lease to now+ttl.
func (s *Store) Renew(ctx context.Context, l baton.Lease, ttl time.Duration) (baton.Lease, error) {
	if err := s.check(ctx, "renew"); err != nil {
		return baton.Lease{}, err
	}
	if err := baton.ValidTopic(l.Topic); err != nil {
		return baton.Lease{}, fmt.Errorf("renew: %w", err)
	}
	if ttl <= 0 {
		return baton.Lease{}, fmt.Errorf("renew: %w", baton.Invalidf("ttl", "must be positive, got %v", ttl))
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	t := d.topics[l.Topic]
	if t == nil {
		return baton.Lease{}, fmt.Errorf("renew %s epoch %d: %w", l.Topic, l.Epoch, baton.ErrLeaseLost)
	}
	if !t.holds(l, now) {
		if t.recordExpired(now) {
			d.notify(l.Topic, baton.SignalLock)
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
	if err := s.check(ctx, "release"); err != nil {
		return err
	}
	if err := baton.ValidTopic(l.Topic); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if reason != baton.ReasonReleased && reason != baton.ReasonFailed {
		return fmt.Errorf("release: %w", baton.Invalidf("reason", "must be %q or %q, got %q", baton.ReasonReleased, baton.ReasonFailed, reason))
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	t := d.topics[l.Topic]
	if t == nil {
		return fmt.Errorf("release %s epoch %d: %w", l.Topic, l.Epoch, baton.ErrLeaseLost)
	}
	if !t.holds(l, now) {
		if t.recordExpired(now) {
			d.notify(l.Topic, baton.SignalLock)
		}
		return fmt.Errorf("release %s epoch %d: %w", l.Topic, l.Epoch, baton.ErrLeaseLost)
	}
	t.released, t.recorded = true, true
	t.records = append(t.records, baton.ReleaseRecord{
		Topic: l.Topic, Holder: l.Holder, Epoch: l.Epoch, Reason: reason, At: now,
		LastSeq: t.cursor.Seq, LastHash: t.cursor.Hash,
	})
	d.notify(l.Topic, baton.SignalLock)
	return nil
}

// Expire writes and returns the record of a lapsed lease that has none.
func (s *Store) Expire(ctx context.Context, name string) (baton.ReleaseRecord, error) {
	if err := s.check(ctx, "expire"); err != nil {
		return baton.ReleaseRecord{}, err
	}
	if err := baton.ValidTopic(name); err != nil {
		return baton.ReleaseRecord{}, fmt.Errorf("expire: %w", err)
	}
	d := s.d
	d.mu.Lock()
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
	d.notify(name, baton.SignalLock)
	return t.records[len(t.records)-1], nil
}

// Lock reads the lock's attributes.
func (s *Store) Lock(ctx context.Context, name string) (baton.LockState, error) {
	if err := s.check(ctx, "lock"); err != nil {
		return baton.LockState{}, err
	}
	if err := baton.ValidTopic(name); err != nil {
		return baton.LockState{}, fmt.Errorf("lock: %w", err)
	}
	d := s.d
	d.mu.Lock()
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
	if err := s.check(ctx, "handovers"); err != nil {
		return nil, err
	}
	if err := validRead(name, limit); err != nil {
		return nil, fmt.Errorf("handovers: %w", err)
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.topics[name]
	if t == nil {
		return nil, nil
	}
	out := make([]baton.ReleaseRecord, 0, min(limit, len(t.records)))
	for i := len(t.records) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, t.records[i])
	}
	return out, nil
}

// Queue.

func validRead(name string, limit int) error {
	if err := baton.ValidTopic(name); err != nil {
		return err
	}
	if limit <= 0 {
		return baton.Invalidf("limit", "must be positive, got %d", limit)
	}
	return nil
}

func validUpdate(i int, u baton.Update) error {
	switch {
	case u.ID == "":
		return baton.Invalidf(fmt.Sprintf("updates[%d].id", i), "missing")
	case u.MsgID == "":
		return baton.Invalidf(fmt.Sprintf("updates[%d].msg_id", i), "missing: normalize the update first")
	case len(u.Value) == 0 || !json.Valid(u.Value):
		return baton.Invalidf(fmt.Sprintf("updates[%d].value", i), "not valid JSON")
	}
	return nil
}

// Append adds the updates atomically, skipping msg ids already taken.
func (s *Store) Append(ctx context.Context, name string, updates []baton.Update) ([]baton.Receipt, error) {
	if err := s.check(ctx, "append"); err != nil {
		return nil, err
	}
	if err := baton.ValidTopic(name); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	for i, u := range updates {
		if err := validUpdate(i, u); err != nil {
			return nil, fmt.Errorf("append %s: %w", name, err)
		}
	}
	if len(updates) == 0 {
		return nil, nil
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	t, created := d.topicForWrite(name)
	receipts := make([]baton.Receipt, len(updates))
	added := 0
	for i, u := range updates {
		if r, ok := t.byMsgID[u.MsgID]; ok {
			r.Duplicate = true
			receipts[i] = r
			continue
		}
		added++
		it := baton.Item{
			Topic:      name,
			Seq:        t.last + 1,
			ID:         u.ID,
			Value:      slices.Clone(u.Value),
			MsgID:      u.MsgID,
			Hash:       baton.HashItem(name, u),
			IngestedAt: now,
		}
		t.last = it.Seq
		t.items = append(t.items, it)
		t.byHash[it.Hash] = it.Seq
		r := baton.Receipt{Seq: it.Seq, Hash: it.Hash, MsgID: it.MsgID}
		t.byMsgID[u.MsgID] = r
		receipts[i] = r
	}
	var sig baton.Signal
	if added > 0 {
		sig |= baton.SignalAppend
	}
	if created {
		sig |= baton.SignalTopic
	}
	d.notify(name, sig)
	return receipts, nil
}

func copyItem(it baton.Item) baton.Item {
	it.Value = slices.Clone(it.Value)
	return it
}

// kept returns the kept items with seq > after, or ErrTrimmed. Callers hold mu.
func (t *topic) kept(after uint64) ([]baton.Item, error) {
	if after < t.trimmed {
		return nil, fmt.Errorf("%s after %d: first kept seq is %d: %w", t.name, after, t.trimmed+1, baton.ErrTrimmed)
	}
	i := after - t.trimmed
	if i >= uint64(len(t.items)) {
		return nil, nil
	}
	return t.items[i:], nil
}

// Items returns up to limit items with seq > after.
func (s *Store) Items(ctx context.Context, name string, after uint64, limit int) ([]baton.Item, error) {
	t, err := s.readTopic(ctx, "items", name, limit)
	if t == nil {
		return nil, err
	}
	defer s.d.mu.Unlock()
	kept, err := t.kept(after)
	if err != nil {
		return nil, fmt.Errorf("items: %w", err)
	}
	kept = kept[:min(limit, len(kept))]
	out := make([]baton.Item, len(kept))
	for i, it := range kept {
		out[i] = copyItem(it)
	}
	return out, nil
}

// SeqOfHash looks an item hash up in the topic's index.
func (s *Store) SeqOfHash(ctx context.Context, name string, h baton.Hash) (uint64, error) {
	if err := s.check(ctx, "seq of hash"); err != nil {
		return 0, err
	}
	if err := baton.ValidTopic(name); err != nil {
		return 0, fmt.Errorf("seq of hash: %w", err)
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.topics[name]; t != nil {
		if seq, ok := t.byHash[h]; ok {
			return seq, nil
		}
	}
	return 0, fmt.Errorf("seq of hash %s in %s: %w", h, name, baton.ErrNotFound)
}

// Topics lists the topics, sorted.
func (s *Store) Topics(ctx context.Context) ([]string, error) {
	if err := s.check(ctx, "topics"); err != nil {
		return nil, err
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.topics))
	for name := range d.topics {
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// Topic summarises a topic's queue.
func (s *Store) Topic(ctx context.Context, name string) (baton.TopicInfo, error) {
	if err := s.check(ctx, "topic"); err != nil {
		return baton.TopicInfo{}, err
	}
	if err := baton.ValidTopic(name); err != nil {
		return baton.TopicInfo{}, fmt.Errorf("topic: %w", err)
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.topics[name]
	if t == nil {
		return baton.TopicInfo{}, fmt.Errorf("topic %s: %w", name, baton.ErrNotFound)
	}
	ti := baton.TopicInfo{Topic: name, LastSeq: t.last}
	if len(t.items) > 0 {
		ti.FirstSeq = t.items[0].Seq
	}
	return ti, nil
}

// Trim deletes the published items with seq < before, keeping the item at
// the cursor (the resume point) and every leaf.
func (s *Store) Trim(ctx context.Context, name string, before uint64) (int, error) {
	if err := s.check(ctx, "trim"); err != nil {
		return 0, err
	}
	if err := baton.ValidTopic(name); err != nil {
		return 0, fmt.Errorf("trim: %w", err)
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.topics[name]
	if t == nil {
		return 0, nil
	}
	upto := min(before, t.cursor.Seq) // delete seq < upto
	n := 0
	for len(t.items) > n && t.items[n].Seq < upto {
		it := t.items[n]
		delete(t.byHash, it.Hash)
		delete(t.pubs, it.Seq)
		t.trimmed = it.Seq
		n++
	}
	if n > 0 {
		t.items = slices.Clone(t.items[n:])
	}
	return n, nil
}

// Publications.

// validCommit checks a commit's shape (C1), without the store.
func validCommit(c baton.Commit) error {
	if err := baton.ValidTopic(c.Topic); err != nil {
		return err
	}
	if c.Holder == "" {
		return baton.Invalidf("holder", "must not be empty")
	}
	if len(c.Items) == 0 {
		return baton.Invalidf("items", "must not be empty")
	}
	if len(c.Leaves) != len(c.Items) {
		return baton.Invalidf("leaves", "%d leaves for %d items", len(c.Leaves), len(c.Items))
	}
	for i, it := range c.Items {
		if want := c.PrevSeq + 1 + uint64(i); it.Seq != want {
			return baton.Invalidf(fmt.Sprintf("items[%d].seq", i), "is %d, want %d (contiguous after prev seq %d)", it.Seq, want, c.PrevSeq)
		}
		lf := c.Leaves[i]
		if lf.Topic != c.Topic || lf.Seq != it.Seq || lf.ItemHash != it.Hash || lf.Epoch != c.Epoch || lf.Publisher != c.Holder {
			return baton.Invalidf(fmt.Sprintf("leaves[%d]", i), "does not match item %d under epoch %d by %s", it.Seq, c.Epoch, c.Holder)
		}
	}
	return nil
}

// Commit publishes items under a live lease, if the cursor is at PrevSeq.
func (s *Store) Commit(ctx context.Context, c baton.Commit) (baton.Cursor, error) {
	if err := s.check(ctx, "commit"); err != nil {
		return baton.Cursor{}, err
	}
	if err := validCommit(c); err != nil {
		return baton.Cursor{}, fmt.Errorf("commit: %w", err)
	}
	if err := baton.CheckCommitCheckpoint(c); err != nil {
		return baton.Cursor{}, fmt.Errorf("commit: %w", err)
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	t := d.topics[c.Topic]
	if t == nil || !t.holds(baton.Lease{Holder: c.Holder, Epoch: c.Epoch}, now) {
		return baton.Cursor{}, fmt.Errorf("commit %s epoch %d by %s: %w", c.Topic, c.Epoch, c.Holder, baton.ErrFenced)
	}
	if t.cursor.Seq != c.PrevSeq {
		return baton.Cursor{}, fmt.Errorf("commit %s after %d: cursor is at %d: %w", c.Topic, c.PrevSeq, t.cursor.Seq, baton.ErrCursorMoved)
	}
	for i, it := range c.Items {
		// Items after the cursor are never trimmed: index from trimmed.
		if it.Seq > t.last || t.items[it.Seq-t.trimmed-1].Hash != it.Hash {
			return baton.Cursor{}, fmt.Errorf("commit %s: %w", c.Topic,
				baton.Invalidf(fmt.Sprintf("items[%d]", i), "seq %d with hash %s is not in the queue", it.Seq, it.Hash))
		}
	}
	last := c.Items[len(c.Items)-1]
	t.cursor = baton.Cursor{Topic: c.Topic, Seq: last.Seq, Hash: last.Hash, Epoch: c.Epoch, UpdatedAt: now}
	for i, it := range c.Items {
		t.pubs[it.Seq] = publication{epoch: c.Epoch, publisher: c.Holder, at: now}
		t.leaves = append(t.leaves, c.Leaves[i])
	}
	if cp := c.Checkpoint; cp != nil && (len(t.cps) == 0 || t.cps[len(t.cps)-1].Size < cp.Size) {
		k := copyCheckpoint(*cp)
		k.Cosignatures, k.At = nil, now
		t.cps = append(t.cps, k)
	}
	d.notify(c.Topic, baton.SignalCommit)
	return t.cursor, nil
}

// Cursor reads the topic's cursor.
func (s *Store) Cursor(ctx context.Context, name string) (baton.Cursor, error) {
	if err := s.check(ctx, "cursor"); err != nil {
		return baton.Cursor{}, err
	}
	if err := baton.ValidTopic(name); err != nil {
		return baton.Cursor{}, fmt.Errorf("cursor: %w", err)
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.topics[name]; t != nil {
		return t.cursor, nil
	}
	return baton.Cursor{}, nil
}

// Published returns up to limit published items with seq > after.
func (s *Store) Published(ctx context.Context, name string, after uint64, limit int) ([]baton.Published, error) {
	t, err := s.readTopic(ctx, "published", name, limit)
	if t == nil {
		return nil, err
	}
	defer s.d.mu.Unlock()
	kept, err := t.kept(after)
	if err != nil {
		return nil, fmt.Errorf("published: %w", err)
	}
	var out []baton.Published
	for _, it := range kept {
		if it.Seq > t.cursor.Seq || len(out) == limit {
			break
		}
		p := t.pubs[it.Seq]
		out = append(out, baton.Published{Item: copyItem(it), Epoch: p.epoch, Publisher: p.publisher, PublishedAt: p.at})
	}
	return out, nil
}

// Leaves returns up to limit ledger leaves with seq > after.
func (s *Store) Leaves(ctx context.Context, name string, after uint64, limit int) ([]baton.Leaf, error) {
	t, err := s.readTopic(ctx, "leaves", name, limit)
	if t == nil {
		return nil, err
	}
	defer s.d.mu.Unlock()
	i := sort.Search(len(t.leaves), func(i int) bool { return t.leaves[i].Seq > after })
	return slices.Clone(t.leaves[i:min(len(t.leaves), i+limit)]), nil
}

// Members.

// Heartbeat records m as live until now+ttl.
func (s *Store) Heartbeat(ctx context.Context, m baton.Member, ttl time.Duration) error {
	if err := s.check(ctx, "heartbeat"); err != nil {
		return err
	}
	if m.Node == "" {
		return fmt.Errorf("heartbeat: %w", baton.Invalidf("node", "must not be empty"))
	}
	if ttl <= 0 {
		return fmt.Errorf("heartbeat: %w", baton.Invalidf("ttl", "must be positive, got %v", ttl))
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	m.Heartbeat, m.ExpiresAt = now, now.Add(ttl)
	m.PublicKey = slices.Clone(m.PublicKey)
	d.members[m.Node] = m
	if len(m.PublicKey) > 0 {
		if d.keys == nil {
			d.keys = make(map[[2]string]struct{})
		}
		d.keys[[2]string{m.Node, string(m.PublicKey)}] = struct{}{}
	}
	return nil
}

// Leave removes a member at once.
func (s *Store) Leave(ctx context.Context, node string) error {
	if err := s.check(ctx, "leave"); err != nil {
		return err
	}
	if node == "" {
		return fmt.Errorf("leave: %w", baton.Invalidf("node", "must not be empty"))
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.members, node)
	return nil
}

// Members lists the live members, sorted by node.
func (s *Store) Members(ctx context.Context) ([]baton.Member, error) {
	if err := s.check(ctx, "members"); err != nil {
		return nil, err
	}
	d := s.d
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	out := make([]baton.Member, 0, len(d.members))
	for node, m := range d.members {
		if !now.Before(m.ExpiresAt) {
			delete(d.members, node)
			continue
		}
		m.PublicKey = slices.Clone(m.PublicKey)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b baton.Member) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// Notifier.

type sub struct {
	d       *data
	topic   string
	signals baton.Signal
	c       chan struct{}
	once    sync.Once
}

func (s *sub) C() <-chan struct{} { return s.c }

func (s *sub) Close() {
	s.once.Do(func() {
		s.d.mu.Lock()
		defer s.d.mu.Unlock()
		delete(s.d.subs, s)
	})
}

// Subscribe returns a coalescing subscription to signals of topic ("" for
// SignalTopic). On a closed handle it never fires.
func (s *Store) Subscribe(name string, signals baton.Signal) baton.Subscription {
	sb := &sub{d: s.d, topic: name, signals: signals, c: make(chan struct{}, 1)}
	if s.closed.Load() {
		return sb
	}
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	s.d.subs[sb] = struct{}{}
	return sb
}

// notify wakes the subscriptions that want sig on topic, and those of ""
// for SignalTopic. Callers hold mu; the sends never block.
func (d *data) notify(topic string, sig baton.Signal) {
	if sig == 0 {
		return
	}
	for sb := range d.subs {
		match := sb.topic == topic && sb.signals&sig != 0 ||
			sb.topic == "" && sig&baton.SignalTopic != 0 && sb.signals&baton.SignalTopic != 0
		if !match {
			continue
		}
		select {
		case sb.c <- struct{}{}:
		default: // a wake-up is pending: coalesce
		}
	}
}

// readTopic checks a read's arguments and, if the topic exists, returns it
// with the data locked: the caller unlocks s.d.mu. A nil topic (with a nil
// error for an unknown topic) means there is nothing to read.
func (s *Store) readTopic(ctx context.Context, op, name string, limit int) (*topic, error) {
	if err := s.check(ctx, op); err != nil {
		return nil, err
	}
	if err := validRead(name, limit); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	s.d.mu.Lock()
	t := s.d.topics[name]
	if t == nil {
		s.d.mu.Unlock()
	}
	return t, nil
}
