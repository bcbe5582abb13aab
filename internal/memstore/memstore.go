// Package memstore is an in-memory baton.Store. It passes the conformance
// suite (package storetest) and stands in for a real engine in the unit
// tests of what sits above the store: the elector, the publisher, the hub.
//
// All state lives in one process behind one mutex; expiry is lazy (a lapsed
// lease or member is noticed by the next call that looks at it), and times
// come from the injected clock, so a test can drive expiry with a manual
// clock. There is no background goroutine: a lapsed lease is signalled
// (SignalLock) only when a call writes its expired record (Acquire,
// AcquireNode, RenewNode, Release, Expire or ExpireNode), as the contract
// allows. Several handles onto the same
// data (Handle) stand for several processes sharing one store.
package memstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/signal"
)

// Store is one handle onto an in-memory store.
type Store struct {
	d      *data
	closed atomic.Bool
}

var _ baton.Store = (*Store)(nil)

// data is what the handles share. mu guards everything below it; changes
// are signalled through sig with mu held (its sends never block).
type data struct {
	clock baton.Clock

	mu      sync.Mutex
	topics  map[string]*topic
	members map[string]baton.Member
	nodes   map[string]*nodeLease
	keys    map[[2]string]struct{} // {node, public key bytes}: every key ever registered
	// reanchors are the topics' re-anchor records (reanchors.go), apart
	// from topic: a record does not create a topic.
	reanchors map[string][]baton.Reanchor
	sig       *signal.Hub
}

// topic is one topic's lock, queue, cursor and ledger. A topic exists once it
// was appended to or locked.
type topic struct {
	name string

	// The lock: the latest lease (Epoch 0 if never taken) and whether its
	// release record was written (it was released, or ended with its node
	// lease).
	lease    baton.Lease
	recorded bool
	records  []baton.ReleaseRecord // oldest first

	// The queue: kept items are trimmed+1 .. last, in order.
	items   []baton.Item
	trimmed uint64
	last    uint64
	byMsgID map[string]baton.Receipt
	byHash  map[baton.Hash]uint64

	cursor baton.Cursor
	leaves []baton.Leaf       // leaves[i] has seq i+1: never trimmed
	cps    []baton.Checkpoint // by size ascending

	// The snapshot (snapshot.go): the latest published item of each id,
	// and the ids in byte order for paging (nil when they changed).
	snap    map[string]baton.Published
	snapIDs []string

	// deleted: DeleteTopic removed it and no Append created it again; it
	// is kept for its lock epoch and, if kept, its ledger (lifecycle.go).
	deleted   bool
	retention baton.Retention
}

// New returns an empty store on clock (the system clock if nil).
func New(clock baton.Clock) *Store {
	if clock == nil {
		clock = baton.SystemClock{}
	}
	return &Store{d: &data{
		clock:     clock,
		topics:    make(map[string]*topic),
		members:   make(map[string]baton.Member),
		nodes:     make(map[string]*nodeLease),
		reanchors: make(map[string][]baton.Reanchor),
		sig:       signal.NewHub(),
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

// begin checks what every call checks (an open handle, a live ctx), then
// valid, the result of the call's own check (one of baton's Validate
// functions, or nil), and locks the data: the caller unlocks d.mu.
func (s *Store) begin(ctx context.Context, op string, valid error) (*data, error) {
	if err := s.check(ctx, op); err != nil {
		return nil, err
	}
	if valid != nil {
		return nil, fmt.Errorf("%s: %w", op, valid)
	}
	s.d.mu.Lock()
	return s.d, nil
}

// now reads the clock without its monotonic reading, as a shared store
// would: expiry compares wall times.
func (d *data) now() time.Time { return d.clock.Now().Round(0) }

// topicForWrite returns the topic, creating it (or a deleted one again);
// created reports whether it is new. Callers hold mu.
func (d *data) topicForWrite(name string) (t *topic, created bool) {
	if t := d.topics[name]; t != nil {
		created, t.deleted = t.deleted, false
		return t, created
	}
	t = &topic{
		name:    name,
		byMsgID: make(map[string]baton.Receipt),
		byHash:  make(map[baton.Hash]uint64),
	}
	d.topics[name] = t
	return t, true
}

// readTopic checks a read's arguments and, if the topic exists, returns it
// with the data locked: the caller unlocks s.d.mu. A nil topic (with a nil
// error for an unknown topic) means there is nothing to read.
func (s *Store) readTopic(ctx context.Context, op, name string, limit int) (*topic, error) {
	d, err := s.begin(ctx, op, baton.ValidateRead(name, limit))
	if err != nil {
		return nil, err
	}
	t := d.topics[name]
	if t == nil {
		d.mu.Unlock()
	}
	return t, nil
}

// Subscribe returns a coalescing subscription to signals of topic ("" for
// SignalTopic). On a closed handle it never fires: it is made on a hub of
// its own, which nothing notifies.
func (s *Store) Subscribe(name string, signals baton.Signal) baton.Subscription {
	if s.closed.Load() {
		return signal.NewHub().Subscribe(name, signals)
	}
	return s.d.sig.Subscribe(name, signals)
}

// SubscribeFunc is Subscribe calling fn (see baton.Notifier).
func (s *Store) SubscribeFunc(name string, signals baton.Signal, fn func(baton.Signal)) baton.Subscription {
	if s.closed.Load() {
		return signal.NewHub().Subscribe(name, signals)
	}
	return s.d.sig.SubscribeFunc(name, signals, fn)
}
