package baton

import (
	"context"
	"time"
)

// Store is the shared store (docs/design.md, step 4): it keeps the
// publish locks, the queues and their hash index, the cursors, the ledger,
// the release records and the membership. Every engine (sqlite, redis) passes
// the conformance suite in package storetest.
//
// All methods are safe for concurrent use. Times in the store come from the
// store's clock.
type Store interface {
	Locks
	Queue
	Publications
	Snapshots
	Checkpoints
	Reanchors
	Members
	Notifier
	Lifecycle
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources. It is idempotent.
	Close() error
}

// Locks is the publish lock of every topic, held under node leases.
//
// Contract:
//   - A node holds at most one live node lease. Topic leases are acquired
//     under it, renewed all at once by RenewNode, and live only while it is:
//     a topic lease is live from acquisition until it is released or its
//     node lease ends (released, or its ExpiresAt passes on the store's
//     clock).
//   - At most one live lease per topic. Every successful Acquire gets an
//     epoch strictly greater than every epoch ever handed out for that topic;
//     every AcquireNode an epoch strictly greater than every earlier node
//     lease of that node.
//   - Exactly one ReleaseRecord exists for every topic epoch that ended:
//     Release writes it with its reason, ReleaseNode writes one for every
//     topic under the node lease, in one step; the first Acquire, AcquireNode,
//     RenewNode, Expire or ExpireNode that finds a lapsed node lease writes
//     them with ReasonExpired (ExpireNode for all its topics in one step). The
//     record holds the cursor as it was when the lease ended.
//   - Acquire fills in the successor fields of the previous epoch's record.
//   - Renewing a node lease signals nothing: an idle node costs the store one
//     write per renewal, whatever the number of its topics. AcquireNode,
//     ReleaseNode and ExpireNode signal SignalNode (topic ""), and SignalLock
//     with SignalFreed on every topic whose lease they ended.
type Locks interface {
	// AcquireNode starts a node lease for node, live until now+ttl unless
	// renewed. It returns ErrLeaseHeld while node has a live node lease. A
	// lapsed earlier node lease of node is ended in the same step (the
	// expired records of its topics written).
	AcquireNode(ctx context.Context, node string, ttl time.Duration) (NodeLease, error)
	// RenewNode extends a live node lease, and so every topic lease under
	// it, to now+ttl. It returns ErrLeaseLost if the node lease has ended or
	// a newer one of the node exists; a lapsed one is ended as ExpireNode
	// would.
	RenewNode(ctx context.Context, nl NodeLease, ttl time.Duration) (NodeLease, error)
	// ReleaseNode ends a live node lease now, and every topic lease under
	// it with reason (released or failed by the node itself, crashed by
	// another that found its process gone), in one step, and returns their
	// records. It returns ErrLeaseLost if the node lease is not live (a
	// lapsed one is ended as ExpireNode would).
	ReleaseNode(ctx context.Context, nl NodeLease, reason ReleaseReason) ([]ReleaseRecord, error)
	// ExpireNode ends node's lapsed node lease: it writes the expired record
	// of every topic lease under it, in one step, and returns them. It
	// returns ErrLeaseHeld if the node lease is live and ErrNotFound if node
	// has no node lease that lapsed without being ended. It is how standbys
	// turn a crashed node into release records at once.
	ExpireNode(ctx context.Context, node string) ([]ReleaseRecord, error)
	// NodeLeases lists the node leases not yet ended, live or lapsed, by
	// node, each with Remaining and Leases.
	NodeLeases(ctx context.Context) ([]NodeLease, error)
	// Acquire takes the topic's lock under the live node lease nl if it is
	// free (never taken, released or ended with its node lease). It returns
	// ErrLeaseHeld if another live lease exists, or if nl's node holds it
	// itself, and ErrLeaseLost if nl is not live.
	Acquire(ctx context.Context, topic string, nl NodeLease) (Lease, error)
	// Release ends a live lease now with the given reason (released or
	// failed); its node lease goes on. Releasing a lease that is no longer
	// live returns ErrLeaseLost.
	Release(ctx context.Context, lease Lease, reason ReleaseReason) error
	// Expire writes the release record of a topic lease whose node lease
	// lapsed and returns it; it returns ErrLeaseHeld if the lease is still
	// live and ErrNotFound if there is no lease that ended without a record.
	Expire(ctx context.Context, topic string) (ReleaseRecord, error)
	// Lock reads the lock's attributes.
	Lock(ctx context.Context, topic string) (LockState, error)
	// Handovers lists the release records of a topic, newest first.
	Handovers(ctx context.Context, topic string, limit int) ([]ReleaseRecord, error)
}

// Queue is the per-topic queue of items with its hash index.
type Queue interface {
	// Append adds updates to the topic's queue atomically: all or none.
	// An update whose MsgID is already in the queue is not added again: its
	// receipt carries the original seq and hash and Duplicate set. The
	// receipt is returned only once the items are durable.
	//
	// Precondition: every Value is valid, compact JSON, as Normalize (or
	// the HTTP decoder, with NormalizeCompact) leaves it. The store keeps
	// and hashes the value byte for byte and does not scan it: a value
	// breaking the precondition is stored as given, and readers (the hub's
	// SSE frames) rely on it. What the store checks is ValidateAppend: a
	// bad topic, a missing id, msg id or value, an id or msg id that is too
	// long or not valid text, is ErrInvalid and appends nothing.
	Append(ctx context.Context, topic string, updates []Update) ([]Receipt, error)
	// Items returns up to limit items with seq > after, published or not, in
	// seq order. If after+1 is older than the earliest kept item, it returns
	// ErrTrimmed.
	Items(ctx context.Context, topic string, after uint64, limit int) ([]Item, error)
	// SeqOfHash looks an item hash up in the index: ErrNotFound if absent.
	SeqOfHash(ctx context.Context, topic string, h Hash) (uint64, error)
	// Topics lists every topic that has a queue or a lock.
	Topics(ctx context.Context) ([]string, error)
	// Topic summarises a topic's queue.
	Topic(ctx context.Context, topic string) (TopicInfo, error)
	// Trim deletes published items with seq < before, keeping their ledger
	// leaves. It never deletes an unpublished item.
	Trim(ctx context.Context, topic string, before uint64) (int, error)
}

// Publications is the cursor and the ledger.
type Publications interface {
	// Commit publishes items atomically: it moves the cursor to the last
	// item and appends the leaves (c.Leaves()), only if the lease (c.Epoch,
	// c.Holder) is live, the cursor is at c.PrevSeq and every item is in
	// the queue at its seq with its hash. Otherwise nothing changes and it
	// returns ErrFenced (stale epoch, expired or released lease),
	// ErrCursorMoved, or ErrInvalid (an item not in the queue, or a commit
	// that fails c.Validate()).
	Commit(ctx context.Context, c Commit) (Cursor, error)
	// Cursor reads the topic's cursor (zero Cursor if nothing was published).
	Cursor(ctx context.Context, topic string) (Cursor, error)
	// Published returns up to limit published items with seq > after, in
	// seq order, never beyond the cursor. ErrTrimmed as for Items.
	Published(ctx context.Context, topic string, after uint64, limit int) ([]Published, error)
	// Leaves returns up to limit ledger leaves with seq > after.
	Leaves(ctx context.Context, topic string, after uint64, limit int) ([]Leaf, error)
}

// Snapshots are each topic's latest published item per data id
// (docs/design.md, "Snapshots").
//
// Contract:
//   - Commit moves the snapshot in its atomic step, fenced as the cursor
//     is: for each committed item in seq order, a tombstone (Item.Deleted)
//     removes its id's row, any other item becomes its id's row (the item
//     as stored in the queue, with the commit's epoch, holder and time, as
//     Published returns it). A commit that changes nothing else (fenced,
//     refused) leaves the snapshot as it was. A commit's Items are the
//     queue's items as Items returned them: an engine may build the rows
//     from them once it has checked their hashes (redis does).
//   - Trim leaves the snapshot alone: it holds its rows' items whatever the
//     queue keeps. DeleteTopic removes the snapshot (with or without the
//     ledger).
//   - Snapshot reads, in one atomic step, the topic's cursor seq (as
//     Cursor reads it) and the rows with id > afterID, in byte order of
//     id, at most limit of them: every row's Seq is at most seq, and the
//     rows are exactly the snapshot as of seq within (afterID, last id
//     returned]. next is the last id returned when more rows may follow,
//     "" when none do. Each page is read at its own seq: a reader stitches
//     pages into one state (hub.ReadSnapshot, docs/design.md). An unknown
//     or deleted topic has an empty snapshot at seq 0.
type Snapshots interface {
	Snapshot(ctx context.Context, topic, afterID string, limit int) (seq uint64, items []Published, next string, err error)
}

// Checkpoints are the ledger's signed checkpoints and their witnesses'
// cosignatures.
//
// Contract:
//   - AddCheckpoint stores cp only if (cp.Epoch, cp.Node) is the topic's live
//     lease (else ErrFenced, as for Commit), cp.Size does not exceed the
//     cursor (else ErrInvalid) and cp.Size is greater than the size of every
//     stored checkpoint of the topic (else ErrInvalid). The store checks no
//     signature: witnesses and auditors do. A stored checkpoint is
//     signalled (SignalCheckpoint) to every handle on the store.
//   - Checkpoints are kept forever; a checkpoint is named by (topic, size).
//     The store stamps Checkpoint.At and Cosignature.At with its clock.
//   - Cosign adds or replaces the cosignature of cs.Node on a stored
//     checkpoint; ErrNotFound if there is none of that size.
type Checkpoints interface {
	AddCheckpoint(ctx context.Context, cp Checkpoint) error
	// Checkpoint returns the latest (largest) checkpoint of the topic with
	// its cosignatures sorted by node; ErrNotFound if there is none.
	Checkpoint(ctx context.Context, topic string) (Checkpoint, error)
	// Checkpoints returns up to limit checkpoints with Size > after, by
	// size ascending, with their cosignatures.
	Checkpoints(ctx context.Context, topic string, after uint64, limit int) ([]Checkpoint, error)
	// Cosign adds a witness's cosignature to the checkpoint of that size.
	Cosign(ctx context.Context, topic string, size uint64, cs Cosignature) error
}

// Reanchors are the topics' re-anchor records (Reanchor), kept forever
// beside the checkpoints.
//
// Contract: AddReanchor appends r to its topic's records, in the order of
// the calls, and signals SignalCommit on the topic, so that every witness
// looks at the topic again; a topic holds at most MaxReanchors (else
// ErrInvalid). Reanchors lists them oldest first.
type Reanchors interface {
	AddReanchor(ctx context.Context, r Reanchor) error
	Reanchors(ctx context.Context, topic string) ([]Reanchor, error)
}

// Members is the membership registry.
type Members interface {
	// NodeKeys lists every (node, public key) pair ever registered by a
	// heartbeat carrying a PublicKey, sorted by node then key. A pair stays
	// after its member leaves or expires.
	NodeKeys(ctx context.Context) ([]NodeKey, error)
	// Heartbeat records m as live until now+ttl.
	Heartbeat(ctx context.Context, m Member, ttl time.Duration) error
	// Leave removes a member at once.
	Leave(ctx context.Context, node string) error
	// Members lists the live members.
	Members(ctx context.Context) ([]Member, error)
}

// Signal is a kind of change in the store.
type Signal uint8

const (
	SignalAppend Signal = 1 << iota // items were appended to the queue
	SignalCommit                    // the cursor moved
	SignalLock                      // the lock changed: acquired, released or expired
	SignalTopic                     // a topic appeared or was deleted (subscribe with topic "")
	SignalNode                      // a node lease began or ended (subscribe with topic "")
	// SignalFreed comes with SignalLock when a topic's lease ended with its
	// holder's node lease (ReleaseNode, ExpireNode, or a node lease found
	// lapsed): a hint that the lock is free, unless taken since, so that a
	// standby may race without reading it first (elector).
	SignalFreed
	// SignalCheckpoint: AddCheckpoint stored a checkpoint of the ledger (a
	// checkpoint a commit carries comes with that commit's SignalCommit).
	// The witnesses check and cosign it without waiting for a round on a
	// timer (ledger/witness_schedule.go).
	SignalCheckpoint
)

// Notifier tells subscribers that something changed. Wake-ups are hints:
// they may be coalesced and may arrive for changes a subscriber already
// read, so the subscriber re-reads the state it cares about. A change made by
// any process sharing the store is signalled, by push where the engine can.
// An engine that may have lost a notification (a reconnection, a change log
// read too late) wakes every subscription: subscribers do not poll idle
// topics, so that an idle topic costs nothing (docs/design.md, node leases).
type Notifier interface {
	// Subscribe returns a subscription that wakes on the given signals for
	// topic ("" for SignalTopic). Close it when done.
	Subscribe(topic string, signals Signal) Subscription
	// SubscribeFunc is Subscribe with a function called after one or more
	// matching changes instead of a channel (the Subscription's C is nil),
	// so that a component waiting on thousands of idle topics holds no
	// goroutine per topic. fn is given the signals raised since its last
	// call (those of signals; a wake-up of every subscription gives all of
	// them but SignalFreed). It runs on one goroutine of the engine's, not
	// under any lock of the store's, and must not block; it is not called
	// once Close has returned, except for a call already under way.
	SubscribeFunc(topic string, signals Signal, fn func(Signal)) Subscription
}

// Subscription is a coalescing wake-up channel.
type Subscription interface {
	// C receives a value after one or more matching changes.
	C() <-chan struct{}
	Close()
}

// RecentPublished is implemented by engines whose commit notifications carry
// the items a small commit published (Redis: the commit's pub/sub message), so
// that a node that does not hold a topic's lease delivers a commit to its
// terminals without a read (the hub, docs/architecture.md).
//
// Contract: RecentPublished(topic, after, limit) answers from what the
// engine heard with its notifications, without a store round trip. ok true
// means ps (up to limit items, possibly none) are the items committed after
// `after`, in order, up to the newest commit of the topic signalled so far by
// SignalCommit: a caller woken by the signal has nothing more to read. ok
// false means it cannot say (a commit heard without its items, a possible
// loss of notifications, after not where the heard commits begin): read
// Published. It is a hint for signal-driven readers only: it may lag a
// commit made a moment ago that is not signalled yet, so it is no substitute
// for Published where a read must see every earlier write.
type RecentPublished interface {
	RecentPublished(topic string, after uint64, limit int) (ps []Published, ok bool)
}

// RecentLock is implemented by engines whose lock notifications name the
// new holder (Redis: the acquire's message), so that a standby that needs to
// know who holds a topic after a signal need not read the lock (elector).
//
// Contract: RecentLock(topic) answers from what the engine heard with its
// notifications, without a store round trip. ok true means the last change
// of the lock heard, with no doubt since, was its acquisition by holder at
// epoch: it may lag a change not signalled yet, never precede one, so a
// subscriber that takes it after draining its wake-ups and before it waits
// again misses nothing (a later change wakes it). ok false means it cannot
// say (a release or end heard, a deletion, a possible loss of
// notifications, a lock change through the same handle): read the lock.
type RecentLock interface {
	RecentLock(topic string) (holder string, epoch uint64, ok bool)
}

// AppendPublisher is implemented by engines that can publish items in the
// write that appends them (SQLite: docs/architecture.md, "The path of one
// item"). On a node that holds a topic's lease and takes its items, an item
// then costs one write transaction (one fsync, one turn of the file's write
// lock) instead of two, and no read of the queue and no wake-up of the
// publisher lie between its append and its publication.
//
// Contract: while registered by PublishOnAppend, p is offered the items
// every Append through this handle adds to topic (after they are written,
// before the write ends). A commit p returns from Propose is made in the
// same write, exactly as Publications.Commit would make it: fenced on the
// lease and the cursor, its leaves, snapshot, cursor and checkpoint
// written; a refusal (fenced, cursor moved) undoes the commit, never the
// append. Settled is then told the outcome once the write has ended: the
// new cursor, or why the commit was not made. An append whose items were
// all published in its write signals SignalCommit in this process, not
// SignalAppend: the publisher it would wake has them (other processes
// hear both). stop ends the registration if p is still the one registered.
type AppendPublisher interface {
	PublishOnAppend(topic string, p Proposer) (stop func())
}

// Proposer is the lease holder's publisher as an AppendPublisher sees it.
type Proposer interface {
	// Propose is offered items just appended to the topic (contiguous, in
	// seq order) and returns the commit to make with them in the same
	// write, or false to leave them to a later Commit. It runs with the
	// store's write lock held: it must not block or call the store.
	Propose(items []Item) (Commit, bool)
	// Settled is told, once the write has ended, the outcome of every
	// commit Propose returned: the new cursor, or the error.
	Settled(c Commit, cur Cursor, err error)
}

// RestingProposer is a Proposer that says which seq its proposal would
// follow, for engines that number an append's items inside the write that
// makes it (Redis: a script), where the items cannot be offered after they
// are written and before the write ends. Such an engine offers the items
// numbered from there, sends the append and the proposed commit to the
// store together, and the commit is fenced as any commit is: it is refused
// unless the items really took those seqs in that append (another append
// came first, a repeated msg id). Resting's ok is false while no proposal
// would be taken; Propose checks again.
//
// HeldLease is the lease the proposer's publisher publishes under. Such an
// engine also tells other processes of an append (SignalAppend) only when
// the topic's lock is no longer that lease: while it is, the one publisher
// an append could wake is this process's, which the engine wakes itself.
type RestingProposer interface {
	Proposer
	Resting() (after uint64, ok bool)
	HeldLease() Lease
}
