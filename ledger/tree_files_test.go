package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
)

// TestOpenFilesEvictAndReopen: with room for one open tree, two trees used
// at once by their own goroutines (appends, proofs, entries) close each
// other's files between calls and never under one: every call succeeds
// and the roots are those of the leaves. A closed tree stays closed.
func TestOpenFilesEvictAndReopen(t *testing.T) {
	files := NewOpenFiles(1)
	const n = 600
	type one struct {
		tr *Tree
		hs [][]byte
	}
	trees := make([]one, 2)
	for i := range trees {
		tr, err := OpenTreeWith(filepath.Join(t.TempDir(), fmt.Sprint(i)), files)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		trees[i].tr = tr
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(trees))
	for i := range trees {
		o := &trees[i]
		leaves := testLeaves(fmt.Sprintf("t%d", i), 1, n)
		for _, l := range leaves {
			o.hs = append(o.hs, LeafHash(l))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for s := uint64(0); s < n; s += 20 {
					if err := o.tr.Append(leaves[s : s+20]); err != nil {
						return err
					}
					size := s + 20
					root, err := o.tr.Root(size)
					if err != nil {
						return err
					}
					p, err := o.tr.InclusionProof(s, size)
					if err != nil {
						return err
					}
					if err := proof.VerifyInclusion(Hasher, s, size, o.hs[s], p, root[:]); err != nil {
						return fmt.Errorf("inclusion of %d in %d: %w", s, size, err)
					}
					if l, _, err := o.tr.Entry(s + 1); err != nil || l.Seq != s+1 {
						return fmt.Errorf("entry %d: %+v %w", s+1, l, err)
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if o := files.Open(); o != 1 {
		t.Fatalf("%d trees open, want 1", o)
	}
	for i, o := range trees {
		// One of the two was evicted last: its root comes from reopened files.
		root, err := o.tr.Root(n)
		if err != nil || string(root[:]) != string(naiveRoot(o.hs)) {
			t.Fatalf("tree %d: root after eviction differs (%v)", i, err)
		}
	}
	trees[0].tr.Close()
	if _, _, err := trees[0].tr.Entry(1); !errors.Is(err, errTreeClosed) {
		t.Fatalf("entry of a closed tree: %v", err)
	}
	if _, err := trees[1].tr.Root(n); err != nil || files.Open() != 1 {
		t.Fatalf("the other tree after a close: %v, %d open", err, files.Open())
	}
}

// TestOpenFilesKeepATreeInUse: a tree in the middle of a call is not
// evicted, however many others are opened; once the call ends, the next
// use of another tree evicts it.
func TestOpenFilesKeepATreeInUse(t *testing.T) {
	files := NewOpenFiles(1)
	open := func(name string) *Tree {
		tr, err := OpenTreeWith(filepath.Join(t.TempDir(), name), files)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	a := open("a")
	if err := a.Append(testLeaves("a", 1, 3)); err != nil {
		t.Fatal(err)
	}
	release, err := a.use()
	if err != nil {
		t.Fatal(err)
	}
	b, c := open("b"), open("c") // new copies: no files until used
	for _, tr := range []*Tree{b, c} {
		if _, err := tr.Range(0); err != nil {
			t.Fatal(err)
		}
	}
	if a.evicted || !b.evicted || c.evicted {
		t.Fatalf("evicted: a %v (in use), b %v, c %v", a.evicted, b.evicted, c.evicted)
	}
	if _, _, err := a.Entry(3); err != nil {
		t.Fatalf("a tree in use lost its files: %v", err)
	}
	release()
	if _, err := b.Root(0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Range(0); err != nil || !a.evicted || b.evicted {
		t.Fatalf("after the call ended: a evicted %v, b evicted %v (%v)", a.evicted, b.evicted, err)
	}
	if l, _, err := a.Entry(3); err != nil || l.Seq != 3 || files.Open() != 1 {
		t.Fatalf("a reopened: %+v %v, %d open", l, err, files.Open())
	}
}

// TestNewCopyHasNoFilesUntilUsed: a copy opened where no directory exists
// makes nothing (a burst of new topics must not wait for files), counts
// no open files, answers its size and empty root, and makes its directory
// and files at its first append; reopened, it holds what was appended.
func TestNewCopyHasNoFilesUntilUsed(t *testing.T) {
	files := NewOpenFiles(4)
	dir := filepath.Join(t.TempDir(), "new-topic")
	tr, err := OpenTreeWith(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("opening a new copy made its directory (stat: %v)", err)
	}
	if n := files.Open(); n != 0 {
		t.Fatalf("open trees = %d, want 0 before the first use", n)
	}
	empty, err := tr.Root(0)
	if err != nil || tr.Size() != 0 {
		t.Fatalf("size %d, root err %v", tr.Size(), err)
	}
	if n, root, err := tr.Latest(); err != nil || n != 0 || root != empty {
		t.Fatalf("latest = %d %x %v, want the empty root", n, root, err)
	}
	leaves := testLeaves("new-topic", 1, 5)
	if err := tr.Append(leaves); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "entries.dat")); err != nil {
		t.Fatalf("the first append made no files: %v", err)
	}
	if n := files.Open(); n != 1 {
		t.Fatalf("open trees = %d, want 1 after the first append", n)
	}
	want, err := tr.Root(5)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := OpenTreeWith(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	got, err := again.Root(5)
	if err != nil || got != want || again.Size() != 5 {
		t.Fatalf("reopened: size %d root %x (%v), want 5 and %x", again.Size(), got, err, want)
	}
}

// TestDefaultMaxOpenTrees: the default bound follows the open-file limit
// within its bounds.
func TestDefaultMaxOpenTrees(t *testing.T) {
	got := defaultMaxOpenTrees()
	if got < DefaultMaxOpenTrees || got > maxOpenTreesCap {
		t.Fatalf("default bound %d, want within [%d, %d]", got, DefaultMaxOpenTrees, maxOpenTreesCap)
	}
	if lim := openFileLimit(); lim/32 >= DefaultMaxOpenTrees && lim/32 <= maxOpenTreesCap && got != lim/32 {
		t.Fatalf("default bound %d with a limit of %d, want %d", got, lim, lim/32)
	}
}
