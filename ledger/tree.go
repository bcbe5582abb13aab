package ledger

import (
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/baton-pub/baton"
)

// Tree is a topic's Merkle log kept in local files, the node's own copy of
// the ledger:
//
//	entries.dat  every leaf's canonical encoding, u32-length-prefixed
//	entries.idx  u64 offset in entries.dat of the leaf at each index
//	level-NN     the hash of every perfect subtree of height NN, by index
//	             (level-00 holds the leaf hashes), 32 bytes each
//
// Every node hash of the tree is stored once, so an inclusion or
// consistency proof of any size up to Size is O(log n) reads of 32 bytes
// (proof.Inclusion names the nodes; the ones on the right border are
// rehashed from stored perfect subtrees) and the root of any size is too.
// Storage is about 2 x 32 bytes of hashes plus the encoding (about 100
// bytes) per leaf.
//
// Appends are serialised (the witness mirroring from the store and, on the
// publishing node, the checkpointer may both append); any number of
// goroutines read. Appends write the files first and publish the new size
// last, so a reader never sees a node that is not written. Files are not synced per append: on open, the tree is cut back to
// its longest consistent prefix, and the witness checks its root against
// the last checkpoint it cosigned (a copy that fails is rebuilt from the
// store).
type Tree struct {
	dir string

	// files bounds the open trees (nil: no bound); elem is t's place in
	// its list (guarded by files.mu).
	files *OpenFiles
	elem  *list.Element

	fmu     sync.Mutex // guards users, evicted, closed and nlevels
	users   int        // calls in progress that read or write the files
	evicted bool       // files closed by OpenFiles, reopened by the next call
	absent  bool       // no files yet (a new copy): the next call creates them
	closed  bool
	nlevels int // level files to reopen

	wmu sync.Mutex // serialises appends; guards the writer-only state below mu's

	mu     sync.RWMutex // guards size, levels (the slice; files are safe for concurrent ReadAt/WriteAt) and upper
	size   uint64
	levels []*os.File
	// upper holds the levels from memLevel up in memory as well (1/256 of
	// the hashes: 2.5 MB for 10M leaves), so a proof reads at most
	// memLevel hashes from files.
	upper [][]byte
	dat   *os.File
	idx   *os.File

	// Writer-only state.
	datEnd  int64
	rng     *compact.Range
	pending [][]byte // per level: hashes to write, starting at index base[level]
	base    []uint64
	buf     []byte
	ibuf    []byte
	scratch []byte
}

var rangeFactory = &compact.RangeFactory{Hash: hashChildren}

const memLevel = 8

const hashSize = 32

// OpenTree opens (creating) the tree in dir, its files open until Close.
func OpenTree(dir string) (*Tree, error) { return OpenTreeWith(dir, nil) }

// OpenTreeWith opens (creating) the tree in dir; files, if not nil,
// bounds the trees with open files that it shares (see OpenFiles).
//
// A tree whose directory does not exist yet is empty and has no files
// until its first call that reads or writes them (as if evicted): a node
// follows every new topic's ledger, and a burst of thousands of new topics
// should not wait for directories and files made one after the other
// before their first publication (docs/benchmarks.md, "Every topic
// published after a creation burst").
func OpenTreeWith(dir string, files *OpenFiles) (*Tree, error) {
	switch _, err := os.Stat(dir); {
	case errors.Is(err, os.ErrNotExist):
		return &Tree{dir: dir, files: files, evicted: true, absent: true, rng: rangeFactory.NewEmptyRange(0)}, nil
	case err != nil:
		return nil, fmt.Errorf("open ledger copy: %w", err)
	}
	t := &Tree{dir: dir, files: files}
	var err error
	if t.dat, err = os.OpenFile(filepath.Join(dir, "entries.dat"), os.O_RDWR|os.O_CREATE, 0o640); err != nil {
		return nil, fmt.Errorf("open ledger copy: %w", err)
	}
	if t.idx, err = os.OpenFile(filepath.Join(dir, "entries.idx"), os.O_RDWR|os.O_CREATE, 0o640); err != nil {
		t.dat.Close()
		return nil, fmt.Errorf("open ledger copy: %w", err)
	}
	if err := t.recover(); err != nil {
		t.Close()
		return nil, fmt.Errorf("open ledger copy %s: %w", dir, err)
	}
	if files != nil {
		files.touch(t)
	}
	return t, nil
}

func fileSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// cut truncates f to size if it is longer. A truncate that changes nothing
// is not free: on ext4 a file truncated to zero is flushed by its next
// close (auto_da_alloc), which made every eviction of a new copy
// (OpenFiles) cost a write-back.
func cut(f *os.File, size int64) error {
	n, err := fileSize(f)
	if err != nil || n <= size {
		return err
	}
	return f.Truncate(size)
}

// recover finds the longest prefix that every file holds, cuts the files to
// it and rebuilds the in-memory compact range from the stored hashes.
func (t *Tree) recover() error {
	isz, err := fileSize(t.idx)
	if err != nil {
		return err
	}
	size := uint64(isz / 8)
	dsz, err := fileSize(t.dat)
	if err != nil {
		return err
	}
	// The last leaf's record must be whole.
	for size > 0 {
		var b [8]byte
		if _, err := t.idx.ReadAt(b[:], int64(size-1)*8); err != nil {
			return err
		}
		off := int64(binary.BigEndian.Uint64(b[:]))
		var lb [4]byte
		if off+4 <= dsz {
			if _, err := t.dat.ReadAt(lb[:], off); err != nil {
				return err
			}
			if end := off + 4 + int64(binary.BigEndian.Uint32(lb[:])); end <= dsz {
				t.datEnd = end
				break
			}
		}
		size--
	}
	if size == 0 {
		t.datEnd = 0
	}
	// Each level L must hold size>>L hashes.
	for level := 0; ; level++ {
		path := filepath.Join(t.dir, levelName(level))
		if level > 0 && size>>level == 0 {
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				break
			}
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			return err
		}
		t.mu.Lock()
		t.levels = append(t.levels, f)
		t.mu.Unlock()
		n, err := fileSize(f)
		if err != nil {
			return err
		}
		have := uint64(n / hashSize)
		if want := size >> level; have < want {
			// Keep what the level supports: whole subtrees plus the rest.
			size = have<<level | size&(1<<level-1)
		}
	}
	// Cut every file to the prefix.
	for level, f := range t.levels {
		if err := cut(f, int64(size>>level)*hashSize); err != nil {
			return err
		}
	}
	if err := cut(t.idx, int64(size)*8); err != nil {
		return err
	}
	var upper [][]byte
	for level := memLevel; level < len(t.levels); level++ {
		for len(upper) <= level {
			upper = append(upper, nil)
		}
		b := make([]byte, int64(size>>level)*hashSize)
		if _, err := t.levels[level].ReadAt(b, 0); err != nil && len(b) > 0 {
			return err
		}
		upper[level] = b
	}
	if size > 0 {
		var b [8]byte
		if _, err := t.idx.ReadAt(b[:], int64(size-1)*8); err != nil {
			return err
		}
		off := int64(binary.BigEndian.Uint64(b[:]))
		var lb [4]byte
		if _, err := t.dat.ReadAt(lb[:], off); err != nil {
			return err
		}
		t.datEnd = off + 4 + int64(binary.BigEndian.Uint32(lb[:]))
	}
	if err := cut(t.dat, t.datEnd); err != nil {
		return err
	}
	// Readers (Size, proofs) may run meanwhile: Reset recovers a live
	// tree.
	t.mu.Lock()
	t.upper, t.size = upper, size
	t.mu.Unlock()
	rng, err := t.rangeAt(size)
	if err != nil {
		return err
	}
	t.rng = rng
	return nil
}

// Close closes the files. Reads after Close fail.
func (t *Tree) Close() error {
	if t.files != nil {
		t.files.forget(t)
	}
	t.fmu.Lock()
	defer t.fmu.Unlock()
	t.closed = true
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closeFiles()
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size
}

// Append adds leaves, which must carry the next seqs (Size+1 onwards).
func (t *Tree) Append(leaves []baton.Leaf) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	release, err := t.use()
	if err != nil {
		return err
	}
	defer release()
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
	if len(leaves) == 0 {
		return nil
	}
	release, err := t.use()
	if err != nil {
		return err
	}
	defer release()
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
	t.mu.RLock()
	size := t.size
	t.mu.RUnlock()
	for i, l := range leaves {
		if l.Seq != size+1+uint64(i) {
			return fmt.Errorf("append to ledger copy: leaf seq %d, want %d", l.Seq, size+1+uint64(i))
		}
	}
	t.buf, t.ibuf = t.buf[:0], t.ibuf[:0]
	for i := range t.pending {
		t.pending[i] = t.pending[i][:0]
	}
	visit := func(id compact.NodeID, h []byte) {
		for int(id.Level) >= len(t.pending) {
			t.pending = append(t.pending, nil)
			t.base = append(t.base, 0)
		}
		if len(t.pending[id.Level]) == 0 {
			t.base[id.Level] = id.Index
		}
		t.pending[id.Level] = append(t.pending[id.Level], h...)
	}
	off := t.datEnd
	for _, l := range leaves {
		start := len(t.buf)
		t.buf = append(t.buf, 0, 0, 0, 0)
		t.buf = appendLeaf(t.buf, l)
		binary.BigEndian.PutUint32(t.buf[start:], uint32(len(t.buf)-start-4))
		t.ibuf = binary.BigEndian.AppendUint64(t.ibuf, uint64(off+int64(start)))
		if err := t.rng.Append(hashLeafEnc(&t.scratch, t.buf[start+4:]), visit); err != nil {
			return fmt.Errorf("append to ledger copy: %w", err)
		}
	}
	if _, err := t.dat.WriteAt(t.buf, off); err != nil {
		return fmt.Errorf("append to ledger copy: %w", err)
	}
	if _, err := t.idx.WriteAt(t.ibuf, int64(size)*8); err != nil {
		return fmt.Errorf("append to ledger copy: %w", err)
	}
	for level, p := range t.pending {
		if len(p) == 0 {
			continue
		}
		f, err := t.level(level)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(p, int64(t.base[level])*hashSize); err != nil {
			return fmt.Errorf("append to ledger copy: %w", err)
		}
	}
	t.datEnd = off + int64(len(t.buf))
	t.publish(size + uint64(len(leaves)))
	return nil
}

// AppendHashes adds leaf hashes without entries: only for building large
// benchmark trees quickly. Such a tree has no entries and must not be
// reopened (it would open empty).
func (t *Tree) AppendHashes(hashes [][]byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	release, err := t.use()
	if err != nil {
		return err
	}
	defer release()
	t.mu.RLock()
	size := t.size
	t.mu.RUnlock()
	for i := range t.pending {
		t.pending[i] = t.pending[i][:0]
	}
	visit := func(id compact.NodeID, h []byte) {
		for int(id.Level) >= len(t.pending) {
			t.pending = append(t.pending, nil)
			t.base = append(t.base, 0)
		}
		if len(t.pending[id.Level]) == 0 {
			t.base[id.Level] = id.Index
		}
		t.pending[id.Level] = append(t.pending[id.Level], h...)
	}
	for _, h := range hashes {
		if err := t.rng.Append(h, visit); err != nil {
			return err
		}
	}
	for level, p := range t.pending {
		if len(p) == 0 {
			continue
		}
		f, err := t.level(level)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(p, int64(t.base[level])*hashSize); err != nil {
			return err
		}
	}
	t.publish(size + uint64(len(hashes)))
	return nil
}

// publish makes the appended leaves visible to readers, with the upper
// levels' new hashes.
func (t *Tree) publish(size uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for level := memLevel; level < len(t.pending); level++ {
		for len(t.upper) <= level {
			t.upper = append(t.upper, nil)
		}
		t.upper[level] = append(t.upper[level], t.pending[level]...)
	}
	t.size = size
}

// level returns the file of a level, creating it (writer only).
func (t *Tree) level(level int) (*os.File, error) {
	t.mu.RLock()
	if level < len(t.levels) {
		f := t.levels[level]
		t.mu.RUnlock()
		return f, nil
	}
	t.mu.RUnlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.levels) <= level {
		f, err := os.OpenFile(filepath.Join(t.dir, levelName(len(t.levels))), os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("append to ledger copy: %w", err)
		}
		t.levels = append(t.levels, f)
	}
	return t.levels[level], nil
}

// node reads the stored hash of a perfect subtree.
func (t *Tree) node(id compact.NodeID) ([]byte, error) {
	t.mu.RLock()
	if int(id.Level) >= memLevel && int(id.Level) < len(t.upper) {
		u := t.upper[id.Level]
		if off := id.Index * hashSize; off+hashSize <= uint64(len(u)) {
			h := append([]byte(nil), u[off:off+hashSize]...)
			t.mu.RUnlock()
			return h, nil
		}
	}
	var f *os.File
	if int(id.Level) < len(t.levels) {
		f = t.levels[id.Level]
	}
	t.mu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("ledger copy: no node at level %d", id.Level)
	}
	h := make([]byte, hashSize)
	if _, err := f.ReadAt(h, int64(id.Index)*hashSize); err != nil {
		return nil, fmt.Errorf("ledger copy: read node %d/%d: %w", id.Level, id.Index, err)
	}
	return h, nil
}

func (t *Tree) nodes(ids []compact.NodeID) ([][]byte, error) {
	hs := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := t.node(id)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	return hs, nil
}

func (t *Tree) checkSize(size uint64) error {
	if have := t.Size(); size > have {
		return fmt.Errorf("ledger copy has %d leaves, not %d: %w", have, size, baton.ErrNotFound)
	}
	return nil
}

// rangeAt is the compact range [0, size), read from the level files.
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
	release, err := t.use()
	if err != nil {
		return nil, err
	}
	defer release()
	return t.rangeAt(size)
}

// Root is the root hash of the first size leaves.
func (t *Tree) Root(size uint64) (baton.Hash, error) {
	var root baton.Hash
	if size == 0 {
		copy(root[:], Hasher.EmptyRoot())
		return root, nil
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
	release, err := t.use()
	if err != nil {
		return nil, err
	}
	defer release()
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
	release, err := t.use()
	if err != nil {
		return nil, err
	}
	defer release()
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
	release, err := t.use()
	if err != nil {
		return baton.Leaf{}, nil, err
	}
	defer release()
	t.mu.RLock()
	idx, dat := t.idx, t.dat
	t.mu.RUnlock()
	var b [8]byte
	if _, err := idx.ReadAt(b[:], int64(seq-1)*8); err != nil {
		return baton.Leaf{}, nil, fmt.Errorf("ledger copy: read entry %d: %w", seq, err)
	}
	off := int64(binary.BigEndian.Uint64(b[:]))
	var lb [4]byte
	if _, err := dat.ReadAt(lb[:], off); err != nil {
		return baton.Leaf{}, nil, fmt.Errorf("ledger copy: read entry %d: %w", seq, err)
	}
	enc := make([]byte, binary.BigEndian.Uint32(lb[:]))
	if _, err := dat.ReadAt(enc, off+4); err != nil && !(errors.Is(err, io.EOF) && len(enc) == 0) {
		return baton.Leaf{}, nil, fmt.Errorf("ledger copy: read entry %d: %w", seq, err)
	}
	l, err := DecodeLeaf(enc)
	if err != nil {
		return l, nil, fmt.Errorf("ledger copy: entry %d: %w", seq, err)
	}
	return l, enc, nil
}

// Reset deletes the copy's files and starts empty.
func (t *Tree) Reset() error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	release, err := t.use()
	if err != nil {
		return err
	}
	defer release()
	t.mu.Lock()
	for _, f := range t.levels {
		f.Close()
	}
	t.levels = nil
	t.upper = nil
	t.size = 0
	t.mu.Unlock()
	for level := 0; ; level++ {
		err := os.Remove(filepath.Join(t.dir, levelName(level)))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("reset ledger copy: %w", err)
		}
	}
	if err := t.dat.Truncate(0); err != nil {
		return fmt.Errorf("reset ledger copy: %w", err)
	}
	if err := t.idx.Truncate(0); err != nil {
		return fmt.Errorf("reset ledger copy: %w", err)
	}
	t.mu.Lock()
	t.datEnd = 0
	t.pending, t.base = nil, nil
	t.mu.Unlock()
	return t.recover()
}
