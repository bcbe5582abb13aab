// Package storetest is the conformance suite of baton.Store: the behaviour of
// the store written once and run against every engine. An engine runs it from
// its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) baton.Store {
//			s := open(t) // a fresh handle; t.Cleanup(func() { s.Close() })
//			return s
//		}, storetest.WithShared(func(t *testing.T) (a, b baton.Store) {
//			return openTwoHandlesOnTheSameData(t)
//		}))
//	}
//
// The suite tests the contract written on the interfaces in package baton.
// Where those comments leave a choice, the suite pins the reading listed
// below; every engine follows it. The references in brackets (L1, Q4, ...)
// appear in the failure messages.
//
// # The factory
//
//   - newStore is called once per subtest and returns a handle that the
//     subtest may Close without disturbing any other subtest. The data behind
//     it may be shared with other subtests (one Redis database, one SQLite
//     file): the suite uses topic and node names that are unique per subtest
//     and per process, and never asserts on what others wrote. Do not wipe
//     shared data in the factory while subtests may run in parallel; the
//     suite runs subtests in parallel only with the Parallel option.
//   - The store's clock runs at real speed and agrees with the test process's
//     wall clock within a minute: the suite waits for leases to lapse in real
//     time (polling with a deadline, never a fixed sleep).
//   - With WithShared, the pair factory returns two separate handles onto the
//     same data, as two processes would have (two *sql.DB on one file, two
//     Redis clients). The Shared subtests check that a change made through one
//     handle is visible through, and signalled to, the other. RunShared runs
//     them alone.
//
// # Decisions: locks
//
//   - L1 The first Acquire of a topic gets epoch 1; every later Acquire gets
//     the previous epoch plus one.
//   - L2 A lease is live while it is not released and the store's now is
//     before ExpiresAt. Acquire while a lease is live is ErrLeaseHeld, for the
//     holder itself too. ExpiresAt-AcquiredAt is the ttl; Remaining is in
//     (0, ttl].
//   - L3 Renew sets ExpiresAt to now+ttl exactly, even when that is sooner than
//     before (the suite shortens leases that way to make them lapse); Topic,
//     Holder, Epoch and AcquiredAt do not change. A lease is named by (Topic,
//     Holder, Epoch): any Lease value with those fields may be renewed,
//     released or used in a Commit. A wrong holder, a stale or unknown epoch, a
//     released or a lapsed lease is ErrLeaseLost.
//   - L4 Release takes only ReasonReleased and ReasonFailed; any other reason
//     is ErrInvalid and the lease stays live. Release of a lease that is not
//     live is ErrLeaseLost and writes no released/failed record.
//   - L5 A record has the cursor (LastSeq, LastHash) as it was when the lease
//     ended. A released/failed record has At = the time of Release. An
//     expired record has At = the lapsed lease's ExpiresAt, the instant it
//     ended, so that Handover() measures the whole gap, detection included.
//   - L6 The first Acquire, Renew or Expire that finds a lapsed lease without
//     record writes the expired record (once, also under races). Release of a
//     lapsed lease may write it too.
//   - L7 Expire: ErrLeaseHeld while the lease is live; ErrNotFound for an
//     unknown topic, a lock never taken, or an ended lease already recorded.
//   - L8 Lock on a topic never locked: Held false, zero Lease, no error. After
//     release or expiry: Held false and Lease is the latest lease (Holder,
//     Epoch), with Remaining <= 0.
//   - L9 Acquire fills Successor, SuccessorEpoch and SuccessorAt (= the new
//     lease's AcquiredAt) of the previous epoch's record, writing the expired
//     record first if needed. The newest record has no successor until then.
//   - L10 Handovers: newest first (epoch descending), at most limit; an unknown
//     topic gives an empty list and no error.
//   - L11 Acquire and Renew check their arguments with baton.ValidateLease
//     (a valid topic, a holder, a positive ttl), Release with
//     baton.ValidateRelease: a bad one is ErrInvalid, an *baton.InvalidError
//     naming the field ("topic", "holder", "ttl", "reason"), and changes
//     nothing.
//
// # Decisions: node leases
//
//   - N1 The first AcquireNode of a node gets epoch 1, every later one the
//     previous plus one; ExpiresAt-AcquiredAt is the ttl. AcquireNode while
//     the node's lease is live is ErrLeaseHeld and changes nothing.
//   - N2 A topic lease acquired under a node lease carries its Holder (the
//     node) and NodeEpoch, and its ExpiresAt is the node lease's.
//   - N3 RenewNode sets the node lease's ExpiresAt to now+ttl, and so that of
//     every topic lease under it, writing no record; a released lease stays
//     ended. A released, lapsed, stale or unknown node lease is ErrLeaseLost.
//   - N4 When a node lease lapses, every topic lease under it is not held,
//     every Commit under it is ErrFenced, and another node may acquire; the
//     expired records have At = the node lease's ExpiresAt.
//   - N5 ReleaseNode writes one record per live topic lease under it, with its
//     reason and the cursor, returns them, signals SignalLock on each topic
//     and SignalNode; a second ReleaseNode is ErrLeaseLost. Another node
//     may end a live node lease it read from NodeLeases with reason crashed
//     (node/peers.go): the same records with that reason, the node's
//     RenewNode is ErrLeaseLost and its commits are ErrFenced. Release (of
//     one topic) refuses crashed.
//   - N6 ExpireNode: ErrNotFound for an unknown node or one whose lease was
//     ended (released or expired); ErrLeaseHeld while live; on a lapsed one it
//     writes the expired record of every topic lease under it that has none
//     (a released one keeps its record), once, and signals as N5.
//   - N7 AcquireNode over a lapsed node lease ends it (its topics' expired
//     records written); writes under the old node lease stay fenced.
//   - N8 Acquire under a released, unknown or never-handed-out node lease is
//     ErrLeaseLost and changes nothing.
//   - N9 NodeLeases lists the node leases not ended, sorted by node, each
//     with the number of topic leases under it.
//
// # Decisions: queue
//
//   - Q1 Append of an empty batch returns no receipts and no error and creates
//     nothing: no topic, no signal.
//   - Q2 Append checks its arguments with baton.ValidateAppend: an update
//     without ID, MsgID or Value, or whose ID or MsgID is over its limit
//     (baton.MaxIDLen, baton.MaxMsgIDLen), not UTF-8 (an unpaired
//     surrogate included) or holds a C0 or C1 control character, DEL,
//     U+2028, U+2029 or a bidi control (U+202A-U+202E, U+2066-U+2069), is
//     ErrInvalid, an *baton.InvalidError naming the field as
//     the HTTP API does ("items[1].msg_id"), and then nothing of the batch is
//     added (all or none). IDs at their limits are fine.
//   - Q3 The store hashes and keeps exactly what it is given: Item.Hash =
//     Receipt.Hash = baton.HashItem(topic, update), Value byte for byte (no
//     re-normalising). It copies the caller's slices and hands out copies.
//   - Q4 Duplicates are by MsgID alone: an update whose MsgID is taken, in an
//     earlier batch or earlier in the same batch, whatever its content, gets
//     Duplicate with the original Seq and Hash and adds nothing. The fresh
//     updates of a batch get contiguous seqs in batch order: duplicates leave
//     no gap. Whether msg ids of trimmed items are remembered is left open.
//   - Q5 Seqs are per topic, from 1, contiguous, also under concurrent
//     appends from any number of handles.
//   - Q6 Topics lists, sorted ascending, every topic that was appended to or
//     locked. Topic on an unknown topic is ErrNotFound; on a topic only
//     locked it is {Topic, 0, 0}. Reads never create a topic.
//   - Q7 Items, Published, Leaves and Handovers with limit <= 0 are
//     ErrInvalid naming "limit" (baton.ValidateRead). Items, Published and Leaves of an unknown topic, or after
//     the last seq, are an empty list and no error; so are they, and
//     Checkpoints, after any position above baton.MaxSeq (up to 2^64-1),
//     which no engine holds. Cursor of a topic with
//     nothing published has Seq 0, a zero Hash and Epoch 0.
//   - Q8 Every method that takes a topic name rejects an invalid one
//     (baton.ValidTopic) with ErrInvalid.
//   - Q9 Append does not scan values: valid, compact JSON is its caller's
//     precondition (baton.Normalize, or the HTTP decoder), checked once where
//     a value enters. A value that is not compact, or not JSON at all, is
//     kept and hashed as given, by every engine alike.
//
// # Decisions: commit and trim
//
//   - C1 A commit is well formed if it passes baton.Commit.Validate (a valid
//     topic, a Holder, a non-zero At, items with Items[i].Seq = PrevSeq+1+i,
//     a checkpoint made under the commit's lease) and every item is in the
//     queue at its seq with that hash. Otherwise the commit is ErrInvalid
//     (an *baton.InvalidError naming the field Validate names) and changes
//     nothing.
//   - C2 A commit whose (Epoch, Holder) is not the live lease (stale, unknown
//     or future epoch, wrong holder, released, lapsed, never locked) is
//     ErrFenced, which wraps ErrLeaseLost, and changes nothing.
//   - C3 The cursor returned by Commit is what Cursor then reads: Topic, the
//     last item's Seq and Hash, the commit's Epoch, a non-zero UpdatedAt.
//   - C4 The store appends the commit's leaves, c.Leaves() (built from the
//     items, the epoch, the holder and At: callers never build them), and
//     they round-trip exactly, At to the nanosecond (time.Equal): the ledger
//     hashes and signs them. Published items carry the commit's Epoch,
//     Holder as Publisher and At as PublishedAt.
//   - T1 Trim(before) deletes the items with seq < before that are published,
//     except the item at the cursor, which stays so that the resume point
//     (SeqOfHash(cursor.Hash), docs/design.md, step 5) always resolves. It
//     returns how many it deleted: 0 for an unknown topic or nothing to
//     delete.
//   - T2 A trimmed item leaves the hash index too (SeqOfHash is ErrNotFound).
//     Its leaf stays. TopicInfo.FirstSeq moves to the first kept item,
//     LastSeq does not move.
//   - T3 Items and Published with after+1 < FirstSeq (after a trim) are
//     ErrTrimmed; after = FirstSeq-1 is fine.
//
// # Decisions: members, notifier, lifecycle
//
//   - M1 Heartbeat stamps Heartbeat = now and ExpiresAt = now+ttl from the
//     store's clock, ignoring those fields of m; one entry per Node, the latest
//     heartbeat wins. An empty Node or ttl <= 0 is ErrInvalid naming "node"
//     or "ttl" (baton.ValidateHeartbeat).
//   - M2 Members lists the live members sorted by Node. Leave of an unknown
//     node is no error; Leave("") is ErrInvalid naming "node".
//   - N1 A change made after Subscribe has returned is signalled within a few
//     seconds, also when made through another handle (an engine using Redis
//     pub/sub waits for the subscription to be confirmed before returning).
//   - N2 SignalAppend: an Append added at least one item. SignalCommit: a
//     Commit moved the cursor. SignalLock: Acquire, Release, and the writing
//     of an expired record. SignalTopic (subscribed with topic ""): a topic
//     first appeared in Topics (its first Append or first Acquire).
//   - N3 A subscriber that does not read never blocks a writer.
//   - N4 Subscription.Close is called once; it does not panic, even after the
//     store was closed, and changes made after it do not panic.
//   - S1 Ping is nil while open. Close is idempotent (nil every time); after
//     it, Ping returns an error wrapping baton.ErrClosed.
package storetest

import (
	"testing"
	"time"

	"github.com/baton-pub/baton"
)

// Option changes how Run runs the suite.
type Option func(*config)

type config struct {
	openPair func(t *testing.T) (a, b baton.Store)
	parallel bool
	shortTTL time.Duration
}

// WithShared also runs the Shared subtests (see RunShared) with openPair, a
// factory of two separate handles onto the same data.
func WithShared(openPair func(t *testing.T) (a, b baton.Store)) Option {
	return func(c *config) { c.openPair = openPair }
}

// Parallel runs the subtests of each group in parallel. Use it only when the
// factory gives every subtest its own data, or shares data without ever
// wiping it.
func Parallel() Option {
	return func(c *config) { c.parallel = true }
}

// WithShortTTL sets the ttl of the leases and members the suite lets lapse
// (default 100ms). Raise it for an engine whose expiry is coarse.
func WithShortTTL(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.shortTTL = d
		}
	}
}

func newConfig(opts []Option) config {
	c := config{shortTTL: 100 * time.Millisecond}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// A test is one subtest of the suite, run on a fresh handle.
type test struct {
	name string
	fn   func(e *env)
}

type group struct {
	name  string
	tests []test
}

func groups() []group {
	return []group{
		{"Locks", lockTests()},
		{"NodeLeases", nodeTests()},
		{"Queue", queueTests()},
		{"Commit", commitTests()},
		{"Trim", trimTests()},
		{"Checkpoints", checkpointTests()},
		{"Reanchors", reanchorTests()},
		{"Members", memberTests()},
		{"Notifier", notifierTests()},
		{"Concurrency", concurrencyTests()},
		{"Lifecycle", lifecycleTests()},
		{"Topics", topicTests()},
		{"Snapshot", snapshotTests()},
	}
}

// Run runs the conformance suite against the stores made by newStore, one
// per subtest. newStore returns a fresh handle and registers its Close with
// t.Cleanup; see the package comment for what it may share.
func Run(t *testing.T, newStore func(t *testing.T) baton.Store, opts ...Option) {
	cfg := newConfig(opts)
	for _, g := range groups() {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					if cfg.parallel {
						t.Parallel()
					}
					tc.fn(newEnv(t, newStore(t), cfg))
				})
			}
		})
	}
	if cfg.openPair != nil {
		t.Run("Shared", func(t *testing.T) { runShared(t, cfg.openPair, cfg) })
	}
}

// RunShared runs only the Shared subtests: openPair returns two separate
// handles onto the same data (two processes sharing a SQLite file, two Redis
// clients), each closed by a t.Cleanup it registers. The subtests check that
// locks, queues, cursors, records and members written through one handle are
// seen through the other, and that its subscriptions are woken.
func RunShared(t *testing.T, openPair func(t *testing.T) (a, b baton.Store), opts ...Option) {
	runShared(t, openPair, newConfig(opts))
}

func runShared(t *testing.T, openPair func(t *testing.T) (a, b baton.Store), cfg config) {
	for _, tc := range sharedTests() {
		t.Run(tc.name, func(t *testing.T) {
			if cfg.parallel {
				t.Parallel()
			}
			a, b := openPair(t)
			if a == nil || b == nil {
				t.Fatal("pair factory returned a nil store")
			}
			pa, pb := newEnv(t, a, cfg), newEnv(t, b, cfg)
			pb.names, pb.leases = pa.names, pa.leases
			tc.fn(&pair{a: pa, b: pb})
		})
	}
}
