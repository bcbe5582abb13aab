package ledger

import (
	"fmt"
	"os"
	"path/filepath"
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
	dir := t.TempDir()
	tr, err := OpenTree(dir)
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

	// A torn write: level 0 and the index lose their tail.
	for _, name := range []string{"level-00", "entries.idx"} {
		p := filepath.Join(dir, name)
		fi, _ := os.Stat(p)
		cut := int64(32 * 5)
		if name == "entries.idx" {
			cut = 8 * 3
		}
		if err := os.Truncate(p, fi.Size()-cut); err != nil {
			t.Fatal(err)
		}
	}
	tr, err = OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if tr.Size() != n-5 {
		t.Fatalf("recovered size %d, want %d", tr.Size(), n-5)
	}
	root, _ := tr.Root(n - 5)
	if string(root[:]) != string(naiveRoot(hs[:n-5])) {
		t.Fatal("recovered root differs")
	}
	if err := tr.Append(leaves[n-5:]); err != nil {
		t.Fatal(err)
	}
	root, _ = tr.Root(n)
	if string(root[:]) != string(naiveRoot(hs)) {
		t.Fatal("root after re-append differs")
	}
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
