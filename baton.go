// Package baton holds Baton's domain: topics, items, the publish lock (a
// fenced lease), the cursor, release records, members, and the small
// interfaces that the store engines (sqlite, redis) implement.
//
// The data path is: a source appends updates to a topic's queue (any node);
// the holder of the topic's lease commits them in order (moving the cursor and
// appending the ledger in one fenced step); every node fans committed items
// out to its terminals.
package baton

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Hash is a SHA-256 digest: of an item (see HashItem) or of a ledger leaf.
type Hash [32]byte

// String returns the hash in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is the zero hash (no item).
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText encodes the hash as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes a hex hash.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash decodes a 64-character hex hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 64 {
		return h, fmt.Errorf("parse hash: want 64 hex characters, got %d", len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("parse hash: %w", err)
	}
	return h, nil
}

// Update is what a source pushes: a data id and a value, and an optional
// client message id that makes retries idempotent. Deleted makes it a
// tombstone: published and delivered like any update, it removes the data
// id from the topic's snapshot (Snapshots); its value may be left out
// (Normalize makes it null).
type Update struct {
	ID      string          `json:"id"`
	Value   json.RawMessage `json:"value"`
	MsgID   string          `json:"msg_id,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
}

// Item is an update once it is durable in a topic's queue.
type Item struct {
	Topic      string          `json:"topic"`
	Seq        uint64          `json:"seq"`
	ID         string          `json:"id"`
	Value      json.RawMessage `json:"value"`
	MsgID      string          `json:"msg_id"`
	Hash       Hash            `json:"hash"`
	IngestedAt time.Time       `json:"ingested_at"`
	// Deleted marks a tombstone (see Update).
	Deleted bool `json:"deleted,omitempty"`
}

// Update returns the update the item was appended from, as HashItem hashes it.
func (it Item) Update() Update {
	return Update{ID: it.ID, Value: it.Value, MsgID: it.MsgID, Deleted: it.Deleted}
}

// Published is an item together with the publication that committed it.
type Published struct {
	Item
	Epoch       uint64    `json:"epoch"`
	Publisher   string    `json:"publisher"`
	PublishedAt time.Time `json:"published_at"`
}

// Receipt acknowledges one appended update. Duplicate is true when the msg id
// had been taken before: Seq and Hash are then those of the original item.
// Its JSON is a receipt of the HTTP API (docs/api.md), duplicate included.
type Receipt struct {
	Seq       uint64 `json:"seq"`
	Hash      Hash   `json:"hash"`
	MsgID     string `json:"msg_id"`
	Duplicate bool   `json:"duplicate"`
}

// Lease is the publish lock of one topic as held by one node. Epoch grows by
// one with every new holder and fences every write the holder makes.
// AcquiredAt and ExpiresAt are read from the store's clock, never a node's.
//
// A lease is held under its holder's node lease (NodeEpoch): it is live only
// while that node lease is, and its ExpiresAt is the node lease's (see
// docs/design.md, node leases).
type Lease struct {
	Topic      string    `json:"topic"`
	Holder     string    `json:"holder"`
	Epoch      uint64    `json:"epoch"`
	NodeEpoch  uint64    `json:"node_epoch"`
	AcquiredAt time.Time `json:"acquired_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// Remaining is the lease's time to live as measured by the store when it
	// answered. Nodes arm timers from it on their own monotonic clock.
	Remaining time.Duration `json:"-"`
	// Cursor, if not nil, is the topic's cursor as it stood when Acquire
	// took the lease, read in the same step: where its holder resumes
	// (nobody else commits under the lease), without reading it again. An
	// engine may leave it nil; Lock never sets it.
	Cursor *Cursor `json:"-"`
	// Resume, if not nil (and Cursor not nil), is what Acquire read for
	// the holder after Cursor in the same step. An engine may leave it nil.
	Resume *Resume `json:"-"`
}

// Resume is what an engine may read in the step that takes a lease, for
// its holder to start publishing without reading it again: when a crash
// hands thousands of topics over at once, each round trip before a topic's
// first commit waits behind those of every other topic (docs/benchmarks.md,
// "Ten thousand topics").
type Resume struct {
	// Checked reports that the lease's Cursor was found in the hash index
	// at its seq (publisher.CheckResume's check). False means not checked:
	// the holder checks it.
	Checked bool
	// Items holds the items after the Cursor as Items(topic, Cursor.Seq,
	// Asked) would have returned them, if Asked is not 0.
	Items []Item
	Asked int
}

// NodeLease is one node's liveness lease: every topic lease the node holds
// lives under it. Renewing it renews them all; when it ends (released, or
// lapsed on the store's clock) they all end together, each with its own
// release record. Epoch grows with every node lease of the same node, so a
// restarted node's writes under its old node lease are fenced.
type NodeLease struct {
	Node       string    `json:"node"`
	Epoch      uint64    `json:"epoch"`
	AcquiredAt time.Time `json:"acquired_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	// Remaining is the time to live as measured by the store when it
	// answered (as Lease.Remaining); 0 or less once lapsed.
	Remaining time.Duration `json:"-"`
	// Leases is how many topic leases are held under it (set by
	// NodeLeases only).
	Leases int `json:"leases"`
}

// LockState is what anyone can read of a topic's publish lock.
type LockState struct {
	Topic string `json:"topic"`
	// Held is true while a lease is live (not released and not expired).
	Held bool `json:"held"`
	// Lease is the current or latest lease; zero if the lock was never taken.
	Lease Lease `json:"lease"`
}

// ReleaseReason says why a lease ended.
type ReleaseReason string

const (
	ReasonExpired  ReleaseReason = "expired"  // the holder stopped renewing
	ReasonReleased ReleaseReason = "released" // the holder gave it up (graceful)
	ReasonFailed   ReleaseReason = "failed"   // the holder failed while publishing
	ReasonDeleted  ReleaseReason = "deleted"  // the topic was deleted (Lifecycle.DeleteTopic)
	// ReasonCrashed: the holder's process was found gone before its node
	// lease lapsed, and another node ended that lease (node/peers.go).
	ReasonCrashed ReleaseReason = "crashed"
)

// Valid reports whether r is one of the known reasons.
func (r ReleaseReason) Valid() bool {
	return r == ReasonExpired || r == ReasonReleased || r == ReasonFailed || r == ReasonDeleted || r == ReasonCrashed
}

// ReleaseRecord is generated exactly once for every epoch whose lease ended.
type ReleaseRecord struct {
	Topic    string        `json:"topic"`
	Holder   string        `json:"holder"`
	Epoch    uint64        `json:"epoch"`
	Reason   ReleaseReason `json:"reason"`
	At       time.Time     `json:"at"`
	LastSeq  uint64        `json:"last_seq"`
	LastHash Hash          `json:"last_hash"`
	// Successor and SuccessorAt are filled in when the next holder acquires.
	Successor      string    `json:"successor,omitempty"`
	SuccessorEpoch uint64    `json:"successor_epoch,omitempty"`
	SuccessorAt    time.Time `json:"successor_at,omitzero"`
}

// Handover returns how long the topic was without a holder, or -1 if no
// successor has acquired yet.
func (r ReleaseRecord) Handover() time.Duration {
	if r.SuccessorAt.IsZero() {
		return -1
	}
	return r.SuccessorAt.Sub(r.At)
}

// Cursor is the position of the last published item of a topic.
type Cursor struct {
	Topic     string    `json:"topic"`
	Seq       uint64    `json:"seq"`
	Hash      Hash      `json:"hash"`
	Epoch     uint64    `json:"epoch"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Commit publishes the items (PrevSeq, PrevSeq+len(Items)] of a topic under
// a lease. The store applies it atomically and only if the lease is live
// with this epoch and holder and the cursor is still at PrevSeq. Validate is
// the shape every engine checks first.
type Commit struct {
	Topic  string
	Epoch  uint64
	Holder string
	// PrevSeq is the cursor the publisher read; the store refuses the commit
	// with ErrCursorMoved if the cursor is elsewhere.
	PrevSeq uint64
	// Items are the items being published, in seq order, PrevSeq+1 onwards.
	Items []Item
	// At is when the holder published them, on its own clock: the time of
	// every leaf the commit appends (see Leaves). It must be set.
	At time.Time
	// Checkpoint, if set, is a signed ledger checkpoint made under this
	// same lease (Epoch, Node = Holder) of at most the new cursor's size.
	// The store keeps it in the same atomic step, as AddCheckpoint would,
	// if its size is above every stored checkpoint's; otherwise it is
	// dropped and the commit goes on. It saves the publisher a write.
	Checkpoint *Checkpoint
}

// Leaves returns the ledger leaves the commit appends, one per item in
// order: Holder, under Epoch, published the item at At. The store appends
// exactly these (a caller never builds them), and a publisher hands the
// same to its ledger.
func (c Commit) Leaves() []Leaf {
	out := make([]Leaf, len(c.Items))
	for i, it := range c.Items {
		out[i] = Leaf{Topic: c.Topic, Seq: it.Seq, ItemHash: it.Hash, Epoch: c.Epoch, Publisher: c.Holder, At: c.At}
	}
	return out
}

// Published is what the store's Published returns for the commit's items
// once it is done: Holder, under Epoch, published them at At (in UTC, to
// the nanosecond, as the stores keep it). The conformance suite holds every
// store to it (storetest), so a publisher's node may hand its terminals
// these instead of reading them back (hub/local.go).
func (c Commit) Published() []Published {
	at := time.Unix(0, c.At.UnixNano()).UTC()
	out := make([]Published, len(c.Items))
	for i, it := range c.Items {
		out[i] = Published{Item: it, Epoch: c.Epoch, Publisher: c.Holder, PublishedAt: at}
	}
	return out
}

// Leaf is one ledger entry: the record that a publisher, holding a lease of
// a given epoch, published an item.
type Leaf struct {
	Topic     string    `json:"topic"`
	Seq       uint64    `json:"seq"`
	ItemHash  Hash      `json:"item_hash"`
	Epoch     uint64    `json:"epoch"`
	Publisher string    `json:"publisher"`
	At        time.Time `json:"at"`
}

// MemberState is what a member says about itself in its heartbeat.
type MemberState string

const (
	MemberIdle       MemberState = "idle"       // live, with capacity to publish
	MemberPublishing MemberState = "publishing" // holds at least one lease
	MemberFull       MemberState = "full"       // holds as many leases as it may
	MemberLeaving    MemberState = "leaving"    // shutting down
)

// Member is one node in the membership registry.
type Member struct {
	Node      string      `json:"node"`
	Addr      string      `json:"addr"`
	State     MemberState `json:"state"`
	Leases    int         `json:"leases"`
	PublicKey []byte      `json:"public_key,omitempty"`
	Heartbeat time.Time   `json:"heartbeat"`
	ExpiresAt time.Time   `json:"expires_at"`
}

// TopicInfo summarises a topic's queue.
type TopicInfo struct {
	Topic string `json:"topic"`
	// FirstSeq is the earliest seq still kept (0 if the queue is empty).
	FirstSeq uint64 `json:"first_seq"`
	// LastSeq is the last appended seq (0 if nothing was ever appended).
	LastSeq uint64 `json:"last_seq"`
}

// Checkpoint is a signed statement of a topic's ledger: the first Size
// leaves (seqs 1..Size) hash, as an RFC 6962 Merkle tree, to Root. The lease
// holder of Epoch (Node) signs it; Note is the signed note as the signer
// made it (body and the signer's signature line, see package ledger), and
// the store keeps it byte for byte. Witnesses add Cosignatures.
type Checkpoint struct {
	Topic        string        `json:"topic"`
	Size         uint64        `json:"size"`
	Root         Hash          `json:"root"`
	Epoch        uint64        `json:"epoch"`
	Node         string        `json:"node"`
	At           time.Time     `json:"at"`
	Note         []byte        `json:"note"`
	Cosignatures []Cosignature `json:"cosignatures,omitempty"`
}

// Cosignature is a witness's signature over a checkpoint's note body: the
// witness (Node) mirrored the ledger, recomputed the root and checked it.
// Signature is one signed-note signature line ("— name base64\n").
type Cosignature struct {
	Node      string    `json:"node"`
	Signature []byte    `json:"signature"`
	At        time.Time `json:"at"`
}

// NodeKey is a public key a node registered (with its heartbeat). Keys are
// kept after the member leaves, so old signatures can still be checked.
type NodeKey struct {
	Node      string `json:"node"`
	PublicKey []byte `json:"public_key"`
}
