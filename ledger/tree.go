package ledger

import (
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/baton-pub/baton"
)

// Tree is a topic's Merkle log as this node keeps it, the node's own copy
// of the ledger, stored in the node's Copies: every leaf's canonical
// encoding, and the hash of every perfect subtree of 2^storedLevel leaves
// or more, each stored once (a smaller one is hashed from its leaves when
// read). An inclusion or consistency proof of any size up to Size is
// O(log n) node reads and at most two blocks of 2^storedLevel leaves
// (proof.Inclusion names the nodes; the ones on the right border are
// rehashed from stored perfect subtrees) and the root of any size is too.
//
// Appends are serialised (the witness mirroring from the store and, on the
// publishing node, the checkpointer may both append); any number of
// goroutines read. An append stores its leaves and nodes in one step and
// publishes the new size after, so a reader never asks for a node that is
// not stored. Appends are not synced one by one: the witness checks the
// copy's root against the last checkpoint it accepted (saved durably,
// which makes the appends before it durable too) and rebuilds from the
// store a copy that fails.
//
// An idle tree holds no file and no goroutine: its compact range (a hash
// per set bit of its size) and a few words.
type Tree struct {
	topic  string
	copies Copies

	wmu sync.Mutex // serialises appends and resets; guards the writer-only state

	mu   sync.RWMutex // guards size, closed and the recent leaves
	size uint64
	// closed: calls fail (the witness stopped following the topic).
	closed bool
	// recent holds the hashes of the leaves appended last, 32 bytes each,
	// the first of them leaf number recentFirst (zero-based): the blocks of
	// 2^storedLevel leaves that a proof or root between two recent sizes
	// hashes (lowNode) come from memory, not from the copy's rows. At most
	// recentBlocks whole blocks and the one being filled; empty at open and
	// after a reset. Appends never write bytes a reader may hold: they add
	// after the end or start a new array.
	recent      []byte
	recentFirst uint64

	// Writer-only state.
	rng     *compact.Range
	scratch []byte
}

var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

// storedLevel is the lowest level of the nodes a Tree stores in its copy:
// a node below it is the root of at most 2^storedLevel leaves, hashed
// from them when read (a proof reads at most two such blocks of 64 leaves,
// a root one). Storing every level cost more than the leaves (a node and
// a half per leaf, 32 bytes each, in rows of their own): the mirror's
// writes were most of a follower's CPU in ingest at batch 100
// (docs/benchmarks.md, "The node's copies in one database").
const storedLevel = 6

// recentBlocks is how many whole blocks of 2^storedLevel leaves a Tree keeps
// the hashes of in memory, besides the block being filled: a witness checks
// each checkpoint against the one it accepted before, a commit or so behind,
// so its proofs hash the last blocks. Reading them from the copy, a query
// per leaf, was a seventh of a node's CPU in ingest at batch 100
// (docs/benchmarks.md, "A tree's recent leaves in memory"). 3 blocks and a
// part are at most 8 KiB per topic that is being appended to.
const recentBlocks = 3

const hashSize = 32

var errTreeClosed = fmt.Errorf("ledger copy is closed")

// OpenTree opens topic's tree in copies: as long as what copies holds,
// empty for a topic never written.
func OpenTree(copies Copies, topic string) (*Tree, error) {
	size, err := copies.Size(topic)
	if err != nil {
		return nil, fmt.Errorf("open ledger copy of %s: %w", topic, err)
	}
	t := &Tree{topic: topic, copies: copies, size: size, recentFirst: size}
	if t.rng, err = t.rangeAt(size); err != nil {
		return nil, fmt.Errorf("open ledger copy of %s: %w", topic, err)
	}
	return t, nil
}

// Close makes later calls fail; what the tree stored stays in its Copies.
func (t *Tree) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return nil
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size
}

func (t *Tree) open() error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return errTreeClosed
	}
	return nil
}

// Append adds leaves, which must carry the next seqs (Size+1 onwards).
func (t *Tree) Append(leaves []baton.Leaf) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.appendLocked(leaves)
}

// AppendFrom adds the leaves that are not in the tree yet: leaves up to
// Size are skipped (another appender was first), the rest must follow on.
func (t *Tree) AppendFrom(leaves []baton.Leaf) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	size := t.Size()
	for len(leaves) > 0 && leaves[0].Seq <= size {
		leaves = leaves[1:]
	}
	return t.appendLocked(leaves)
}

// Latest returns the size and root of the tree, from the in-memory compact
// range: O(log n) hashing, no reads.
func (t *Tree) Latest() (uint64, baton.Hash, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	var root baton.Hash
	n := t.rng.End()
	if n == 0 {
		copy(root[:], Hasher.EmptyRoot())
		return 0, root, nil
	}
	h, err := t.rng.GetRootHash(nil)
	copy(root[:], h)
	return n, root, err
}

func (t *Tree) appendLocked(leaves []baton.Leaf) error {
	if len(leaves) == 0 {
		return nil
	}
	if err := t.open(); err != nil {
		return err
	}
	size := t.Size()
	for i, l := range leaves {
		if l.Seq != size+1+uint64(i) {
			return fmt.Errorf("append to ledger copy: leaf seq %d, want %d", l.Seq, size+1+uint64(i))
		}
	}
	encs := make([][]byte, len(leaves))
	nodes := make([]Node, 0, len(leaves)/(1<<storedLevel)*2+2)
	visit := func(id compact.NodeID, h []byte) {
		if id.Level >= storedLevel {
			nodes = append(nodes, Node{NodeID: NodeID{Level: id.Level, Index: id.Index}, Hash: h})
		}
	}
	// The range is extended on a clone: a failed store leaves it as the
	// stored tree has it.
	rng, err := cloneRange(t.rng)
	if err != nil {
		return err
	}
	hs := make([]byte, 0, len(leaves)*hashSize)
	for i, l := range leaves {
		encs[i] = EncodeLeaf(l)
		h := hashLeafEnc(&t.scratch, encs[i])
		hs = append(hs, h...)
		if err := rng.Append(h, visit); err != nil {
			return fmt.Errorf("append to ledger copy: %w", err)
		}
	}
	if err := t.copies.Append(t.topic, size+1, encs, nodes); err != nil {
		return fmt.Errorf("append to ledger copy: %w", err)
	}
	t.rng = rng
	t.publishRecent(size+uint64(len(leaves)), hs)
	return nil
}

// publishRecent makes the appended leaves visible to readers, their hashes
// (hs) with them, and drops the recent hashes of blocks too old to keep.
func (t *Tree) publishRecent(size uint64, hs []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.recentFirst+uint64(len(t.recent)/hashSize) != size-uint64(len(hs)/hashSize) {
		// Not contiguous (cannot happen: appends follow on); start afresh.
		t.recent, t.recentFirst = nil, size-uint64(len(hs)/hashSize)
	}
	t.recent = append(t.recent, hs...)
	const block = 1 << storedLevel
	if keep := size / block; keep > recentBlocks {
		if from := (keep - recentBlocks) * block; from > t.recentFirst {
			// A new array: a reader may still be reading the old one.
			t.recent = append(make([]byte, 0, (recentBlocks+1)*block*hashSize), t.recent[(from-t.recentFirst)*hashSize:]...)
			t.recentFirst = from
		}
	}
	t.size = size
}

// recentLeaves returns the hashes of the leaves first..first+n-1
// (zero-based) if the recent ones hold them all, else nil.
func (t *Tree) recentLeaves(first, n uint64) []byte {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if first < t.recentFirst || first+n > t.recentFirst+uint64(len(t.recent)/hashSize) {
		return nil
	}
	off := (first - t.recentFirst) * hashSize
	return t.recent[off : off+n*hashSize : off+n*hashSize]
}

// cloneRange copies r (the hashes are not modified in place: appends
// replace them).
func cloneRange(r *compact.Range) (*compact.Range, error) {
	return rangeFactory.NewRange(r.Begin(), r.End(), append([][]byte(nil), r.Hashes()...))
}

// publish makes the appended leaves visible to readers.
func (t *Tree) publish(size uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.size = size
}

func (t *Tree) nodes(ids []compact.NodeID) ([][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if err := t.open(); err != nil {
		return nil, err
	}
	hs := make([][]byte, len(ids))
	var stored []NodeID
	var at []int // the index in ids of each of stored
	leaves := map[uint64][]byte{}
	var scratch []byte
	for i, id := range ids {
		if id.Level >= storedLevel {
			stored = append(stored, NodeID{Level: id.Level, Index: id.Index})
			at = append(at, i)
			continue
		}
		h, err := t.lowNode(id, leaves, &scratch)
		if err != nil {
			return nil, fmt.Errorf("ledger copy: %w", err)
		}
		hs[i] = h
	}
	if len(stored) > 0 {
		got, err := t.copies.Nodes(t.topic, stored)
		if err != nil {
			return nil, fmt.Errorf("ledger copy: %w", err)
		}
		for k, h := range got {
			hs[at[k]] = h
		}
	}
	return hs, nil
}

// lowNode is the hash of a node below storedLevel, from the leaves under
// it (at most 2^storedLevel of them): their hashes from the recent ones in
// memory, or from leaves (their hashes by zero-based index, across the
// nodes of one read), or else read from the copy in one read of the node's
// whole block, whose hashes go to leaves.
func (t *Tree) lowNode(id compact.NodeID, leaves map[uint64][]byte, scratch *[]byte) ([]byte, error) {
	first := id.Index << id.Level // the leaves' zero-based indexes
	n := uint64(1) << id.Level
	rng := rangeFactory.NewEmptyRange(first)
	recent := t.recentLeaves(first, n)
	if recent == nil && leaves[first] == nil {
		if err := t.readBlock(first, leaves, scratch); err != nil {
			return nil, fmt.Errorf("node %d/%d: %w", id.Level, id.Index, err)
		}
	}
	for i := first; i < first+n; i++ {
		h := leaves[i]
		if recent != nil {
			h = recent[(i-first)*hashSize : (i-first+1)*hashSize]
		}
		if h == nil {
			return nil, fmt.Errorf("node %d/%d: leaf %d not read", id.Level, id.Index, i+1)
		}
		if err := rng.Append(h, nil); err != nil {
			return nil, err
		}
	}
	// An aligned perfect subtree: the range is one node, the one asked for.
	hs := rng.Hashes()
	if len(hs) != 1 {
		return nil, fmt.Errorf("node %d/%d: a range of %d nodes", id.Level, id.Index, len(hs))
	}
	return hs[0], nil
}

// readBlock reads the leaves of the block of 2^storedLevel that holds leaf
// i (zero-based), those of it that the tree has, and puts their hashes in
// leaves.
func (t *Tree) readBlock(i uint64, leaves map[uint64][]byte, scratch *[]byte) error {
	const block = 1 << storedLevel
	from := i / block * block
	n := min(block, t.Size()-from)
	encs, err := t.copies.Entries(t.topic, from+1, int(n))
	if err != nil {
		return err
	}
	for k, enc := range encs {
		leaves[from+uint64(k)] = hashLeafEnc(scratch, enc)
	}
	return nil
}

func (t *Tree) checkSize(size uint64) error {
	if have := t.Size(); size > have {
		return fmt.Errorf("ledger copy has %d leaves, not %d: %w", have, size, baton.ErrNotFound)
	}
	return nil
}

// rangeAt is the compact range [0, size), read from the stored nodes.
func (t *Tree) rangeAt(size uint64) (*compact.Range, error) {
	hs, err := t.nodes(compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	return rangeFactory.NewRange(0, size, hs)
}

// Range returns the compact range of the first size leaves (size <= Size).
func (t *Tree) Range(size uint64) (*compact.Range, error) {
	if err := t.checkSize(size); err != nil {
		return nil, err
	}
	return t.rangeAt(size)
}

// Root is the root hash of the first size leaves.
func (t *Tree) Root(size uint64) (baton.Hash, error) {
	var root baton.Hash
	if size == 0 {
		copy(root[:], Hasher.EmptyRoot())
		return root, nil
	}
	// The latest size (a checkpointer's, a witness's usual question): from
	// the compact range in memory, no reads.
	if err := t.open(); err != nil {
		return root, err
	}
	if n, latest, err := t.Latest(); err == nil && n == size {
		return latest, nil
	}
	r, err := t.Range(size)
	if err != nil {
		return root, err
	}
	h, err := r.GetRootHash(nil)
	if err != nil {
		return root, err
	}
	copy(root[:], h)
	return root, nil
}

// InclusionProof proves the leaf at index in the tree of the given size.
func (t *Tree) InclusionProof(index, size uint64) ([][]byte, error) {
	if err := t.checkSize(size); err != nil {
		return nil, err
	}
	if index >= size {
		return nil, baton.Invalidf("seq", "leaf %d is not in a tree of %d leaves", index+1, size)
	}
	ns, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	hs, err := t.nodes(ns.IDs)
	if err != nil {
		return nil, err
	}
	return ns.Rehash(hs, hashChildren)
}

// ConsistencyProof proves that the tree of size1 is a prefix of size2.
func (t *Tree) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	if err := t.checkSize(size2); err != nil {
		return nil, err
	}
	if size1 > size2 {
		return nil, baton.Invalidf("from", "%d is above to=%d", size1, size2)
	}
	ns, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	hs, err := t.nodes(ns.IDs)
	if err != nil {
		return nil, err
	}
	return ns.Rehash(hs, hashChildren)
}

// Entry reads the leaf with the given seq and its canonical encoding.
func (t *Tree) Entry(seq uint64) (baton.Leaf, []byte, error) {
	if seq == 0 {
		return baton.Leaf{}, nil, baton.Invalidf("seq", "seqs start at 1")
	}
	if err := t.checkSize(seq); err != nil {
		return baton.Leaf{}, nil, err
	}
	if err := t.open(); err != nil {
		return baton.Leaf{}, nil, err
	}
	enc, err := t.copies.Entry(t.topic, seq)
	if err != nil {
		return baton.Leaf{}, nil, fmt.Errorf("ledger copy: read entry %d: %w", seq, err)
	}
	l, err := DecodeLeaf(enc)
	if err != nil {
		return l, nil, fmt.Errorf("ledger copy: entry %d: %w", seq, err)
	}
	return l, enc, nil
}

// Reset deletes the copy's leaves and nodes and starts empty.
func (t *Tree) Reset() error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if err := t.open(); err != nil {
		return err
	}
	if err := t.copies.Reset(t.topic); err != nil {
		return fmt.Errorf("reset ledger copy: %w", err)
	}
	t.rng = rangeFactory.NewEmptyRange(0)
	t.mu.Lock()
	t.recent, t.recentFirst = nil, 0
	t.mu.Unlock()
	t.publish(0)
	return nil
}
