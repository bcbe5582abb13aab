package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/baton-pub/baton"
)

func testLeaves(topic string, from, n uint64) []baton.Leaf {
	out := make([]baton.Leaf, 0, n)
	for s := from; s < from+n; s++ {
		var h baton.Hash
		copy(h[:], fmt.Sprintf("item-%d", s))
		out = append(out, baton.Leaf{Topic: topic, Seq: s, ItemHash: h, Epoch: 1 + s/100, Publisher: "node-a",
			At: time.Unix(1700000000, int64(s)).UTC()})
	}
	return out
}

// naiveRoot computes the RFC 6962 root recursively from leaf hashes.
func naiveRoot(hs [][]byte) []byte {
	switch len(hs) {
	case 0:
		return Hasher.EmptyRoot()
	case 1:
		return hs[0]
	}
	k := 1
	for k*2 < len(hs) {
		k *= 2
	}
	return Hasher.HashChildren(naiveRoot(hs[:k]), naiveRoot(hs[k:]))
}

func TestLeafRoundTrip(t *testing.T) {
	for _, l := range append(testLeaves("quotes", 1, 3), baton.Leaf{Topic: "t", Seq: 9}) {
		got, err := DecodeLeaf(EncodeLeaf(l))
		if err != nil {
			t.Fatal(err)
		}
		if got != l && !(got.At.Equal(l.At) && got.Topic == l.Topic && got.Seq == l.Seq) {
			t.Fatalf("round trip: got %+v, want %+v", got, l)
		}
	}
	if _, err := DecodeLeaf(append(EncodeLeaf(testLeaves("t", 1, 1)[0]), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestTreeProofsAndRecovery(t *testing.T) {
	for _, n := range []uint64{300, 2100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { testTree(t, n) })
	}
}

func testTree(t *testing.T, n uint64) {
	copies := NewMemCopies()
	tr, err := OpenTree(copies, "quotes")
	if err != nil {
		t.Fatal(err)
	}
	leaves := testLeaves("quotes", 1, n)
	var hs [][]byte
	for _, l := range leaves {
		hs = append(hs, LeafHash(l))
	}
	// Append in uneven batches.
	for i := uint64(0); i < n; {
		j := min(n, i+1+i%37)
		if err := tr.Append(leaves[i:j]); err != nil {
			t.Fatal(err)
		}
		i = j
	}
	for _, size := range []uint64{0, 1, 2, 3, 7, 8, 9, 100, 255, 256, 257, 1024, 1500, n} {
		if size > n {
			continue
		}
		root, err := tr.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		if want := naiveRoot(hs[:size]); string(root[:]) != string(want) {
			t.Fatalf("root of %d differs", size)
		}
		for _, idx := range []uint64{0, size / 2, size - 1} {
			if size == 0 {
				break
			}
			p, err := tr.InclusionProof(idx, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(Hasher, idx, size, hs[idx], p, root[:]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", idx, size, err)
			}
		}
		if size > 0 {
			p, err := tr.ConsistencyProof(size, n)
			if err != nil {
				t.Fatal(err)
			}
			full, _ := tr.Root(n)
			if err := proof.VerifyConsistency(Hasher, size, n, p, root[:], full[:]); err != nil {
				t.Fatalf("consistency %d..%d: %v", size, n, err)
			}
		}
	}
	l, enc, err := tr.Entry(42)
	if err != nil || l.Seq != 42 || string(Hasher.HashLeaf(enc)) != string(hs[41]) {
		t.Fatalf("entry 42: %+v %v", l, err)
	}
	tr.Close()

	// Opened again (a restart), the tree is what was stored.
	tr, err = OpenTree(copies.Reopen(), "quotes")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Size() != n {
		t.Fatalf("reopened size %d, want %d", tr.Size(), n)
	}
	if size, root, err := tr.Latest(); err != nil || size != n || string(root[:]) != string(naiveRoot(hs)) {
		t.Fatalf("reopened tree's latest = %d, %x, %v; want %d leaves and the naive root", size, root, err, n)
	}
	more := testLeaves("quotes", n+1, 3)
	// An append the store refuses changes nothing: the next one fits.
	failing := &failCopies{Copies: tr.copies}
	tr.copies = failing
	if err := tr.Append(more); err == nil {
		t.Fatal("append through a failing store: no error")
	}
	if tr.Size() != n {
		t.Fatalf("size after a failed append %d, want %d", tr.Size(), n)
	}
	failing.ok = true
	if err := tr.Append(more); err != nil {
		t.Fatal(err)
	}
	for _, l := range more {
		hs = append(hs, LeafHash(l))
	}
	if size, root, err := tr.Latest(); err != nil || size != n+3 || string(root[:]) != string(naiveRoot(hs)) {
		t.Fatalf("latest after the retried append = %d, %v; want %d leaves and the naive root", size, err, n+3)
	}
	if root, err := tr.Root(n + 3); err != nil || string(root[:]) != string(naiveRoot(hs)) {
		t.Fatalf("root read back after the retried append differs: %v", err)
	}
}

// TestTreeStoresUpperLevelsOnly: the copy holds the leaves and the nodes
// of storedLevel and above; every proof of a small tree (sizes and
// indexes at every alignment below and around a 64-leaf block) is built
// from leaves for the levels below, and verifies.
func TestTreeStoresUpperLevelsOnly(t *testing.T) {
	copies := NewMemCopies()
	tr, err := OpenTree(copies, "small")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	const n = 3*(1<<storedLevel) + 5
	leaves := testLeaves("small", 1, n)
	var hs [][]byte
	for _, l := range leaves {
		hs = append(hs, LeafHash(l))
		if err := tr.Append([]baton.Leaf{l}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := copies.Nodes("small", []NodeID{{Level: 0, Index: 0}}); !errors.Is(err, ErrCopyMissing) {
		t.Fatalf("a leaf hash read from the copy: %v, want ErrCopyMissing (levels below %d are not stored)", err, storedLevel)
	}
	if _, err := copies.Nodes("small", []NodeID{{Level: storedLevel - 1, Index: 0}}); !errors.Is(err, ErrCopyMissing) {
		t.Fatalf("a node of level %d read from the copy: %v, want ErrCopyMissing", storedLevel-1, err)
	}
	got, err := copies.Nodes("small", []NodeID{{Level: storedLevel, Index: 2}, {Level: storedLevel + 1, Index: 0}})
	if err != nil {
		t.Fatalf("the nodes of level %d and up are stored: %v", storedLevel, err)
	}
	if want := naiveRoot(hs[2<<storedLevel : 3<<storedLevel]); string(got[0]) != string(want) {
		t.Fatalf("stored node %d/2 differs from its leaves' root", storedLevel)
	}
	if want := naiveRoot(hs[:2<<storedLevel]); string(got[1]) != string(want) {
		t.Fatalf("stored node %d/0 differs from its leaves' root", storedLevel+1)
	}
	for size := uint64(1); size <= n; size++ {
		root, err := tr.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		if want := naiveRoot(hs[:size]); string(root[:]) != string(want) {
			t.Fatalf("root of %d differs", size)
		}
		for idx := range size {
			p, err := tr.InclusionProof(idx, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(Hasher, idx, size, hs[idx], p, root[:]); err != nil {
				t.Fatalf("inclusion %d in %d: %v", idx, size, err)
			}
		}
		full, _ := tr.Root(n)
		p, err := tr.ConsistencyProof(size, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(Hasher, size, n, p, root[:], full[:]); err != nil {
			t.Fatalf("consistency %d..%d: %v", size, n, err)
		}
	}
}

// failCopies fails every Append until ok.
type failCopies struct {
	Copies
	ok bool
}

func (f *failCopies) Append(topic string, first uint64, encs [][]byte, nodes []Node) error {
	if !f.ok {
		return errors.New("disk full")
	}
	return f.Copies.Append(topic, first, encs, nodes)
}

func TestFastHashesAreRFC6962(t *testing.T) {
	for _, l := range testLeaves("quotes", 1, 5) {
		if got, want := LeafHash(l), Hasher.HashLeaf(EncodeLeaf(l)); string(got) != string(want) {
			t.Fatal("leaf hash differs from rfc6962")
		}
		var s []byte
		if got, want := hashLeafEnc(&s, EncodeLeaf(l)), Hasher.HashLeaf(EncodeLeaf(l)); string(got) != string(want) {
			t.Fatal("leaf hash of encoding differs from rfc6962")
		}
	}
	a, b := Hasher.HashLeaf([]byte("a")), Hasher.HashLeaf([]byte("b"))
	if string(hashChildren(a, b)) != string(Hasher.HashChildren(a, b)) {
		t.Fatal("children hash differs from rfc6962")
	}
}

// countCopies counts the leaves read back from the copy.
type countCopies struct {
	Copies
	entries atomic.Int64 // leaves read
	reads   atomic.Int64 // calls of Entries
}

func (c *countCopies) Entry(topic string, seq uint64) ([]byte, error) {
	c.entries.Add(1)
	return c.Copies.Entry(topic, seq)
}

func (c *countCopies) Entries(topic string, first uint64, n int) ([][]byte, error) {
	c.entries.Add(int64(n))
	c.reads.Add(1)
	return c.Copies.Entries(topic, first, n)
}

// openTestTree opens topic's tree in copies (closed at the test's end) and
// makes n leaves for it, and their hashes, not appended yet.
func openTestTree(t *testing.T, copies Copies, topic string, n uint64) (*Tree, []baton.Leaf, [][]byte) {
	t.Helper()
	tr, err := OpenTree(copies, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	leaves := testLeaves(topic, 1, n)
	hs := make([][]byte, len(leaves))
	for i, l := range leaves {
		hs[i] = LeafHash(l)
	}
	return tr, leaves, hs
}

// TestTreeRecentLeaves: the hashes of the last blocks appended serve roots
// and proofs between recent sizes with no leaf read from the copy, older
// sizes read theirs, and both give what a tree opened afresh (no recent
// leaves) and the naive root give.
func TestTreeRecentLeaves(t *testing.T) {
	const block = 1 << storedLevel
	const n = 700
	copies := &countCopies{Copies: NewMemCopies()}
	tr, leaves, hs := openTestTree(t, copies, "recent", n)
	for i := 0; i < n; i += 37 {
		if err := tr.Append(leaves[i:min(n, i+37)]); err != nil {
			t.Fatal(err)
		}
	}
	if want := uint64(n/block-recentBlocks) * block; tr.recentFirst != want || uint64(len(tr.recent)/hashSize) != n-want {
		t.Fatalf("recent leaves from %d, %d of them; want from %d, %d", tr.recentFirst, len(tr.recent)/hashSize, want, n-want)
	}

	check := func(tr *Tree, size uint64) []byte {
		t.Helper()
		root, err := tr.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		if want := naiveRoot(hs[:size]); string(root[:]) != string(want) {
			t.Fatalf("root of %d differs from the naive root", size)
		}
		p, err := tr.ConsistencyProof(size, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(Hasher, size, n, p, root[:], naiveRoot(hs)); err != nil {
			t.Fatalf("consistency %d..%d: %v", size, n, err)
		}
		return bytes.Join(append(p, root[:]), nil)
	}
	copies.entries.Store(0)
	for size := tr.recentFirst + 1; size <= n; size++ {
		check(tr, size)
	}
	if got := copies.entries.Load(); got != 0 {
		t.Fatalf("%d leaves read from the copy for roots and proofs within the recent blocks, want 0", got)
	}
	check(tr, 100)
	if copies.entries.Load() == 0 {
		t.Fatal("a proof from size 100 read no leaf: it cannot have come from the recent blocks")
	}
	// A root and a proof read the block of 100's border once each, not
	// leaf by leaf.
	if r := copies.reads.Load(); r > 2 || copies.entries.Load() != r*(1<<storedLevel) {
		t.Fatalf("a root and a proof of size 100: %d reads of %d leaves, want at most 2 reads of a block each", r, copies.entries.Load())
	}

	fresh, err := OpenTree(copies, "recent")
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	for size := uint64(1); size <= n; size++ {
		if a, b := check(tr, size), check(fresh, size); !bytes.Equal(a, b) {
			t.Fatalf("size %d: the proof from the recent leaves differs from the one read from the copy", size)
		}
	}

	if err := tr.Reset(); err != nil {
		t.Fatal(err)
	}
	if tr.recent != nil || tr.recentFirst != 0 {
		t.Fatalf("recent leaves kept across a reset: from %d, %d bytes", tr.recentFirst, len(tr.recent))
	}
}

// TestTreeRecentLeavesConcurrent: proofs read while appends go on (run with
// -race): a reader's recent hashes are never written under it.
func TestTreeRecentLeavesConcurrent(t *testing.T) {
	const n = 3000
	tr, leaves, hs := openTestTree(t, NewMemCopies(), "busy", n)
	roots := make([][]byte, n+1)
	for size := 1; size <= n; size++ {
		roots[size] = naiveRoot(hs[:size])
	}
	done := make(chan struct{})
	var failed atomic.Value
	go func() {
		defer close(done)
		for {
			size := tr.Size()
			if size > 40 {
				from := size - 1 - uint64(size%37)
				p, err := tr.ConsistencyProof(from, size)
				if err == nil {
					err = proof.VerifyConsistency(Hasher, from, size, p, roots[from], roots[size])
				}
				if err != nil {
					failed.Store(fmt.Sprintf("consistency %d..%d: %v", from, size, err))
					return
				}
			}
			if size == n {
				return
			}
		}
	}()
	for i := 0; i < n; i += 13 {
		if err := tr.Append(leaves[i:min(n, i+13)]); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if f := failed.Load(); f != nil {
		t.Fatal(f)
	}
}
