package ledger

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// OpenFiles bounds how many Trees keep their files open at once: a node
// follows every topic's ledger, and a tree holds 3 to 40 descriptors
// (entries.dat, entries.idx and a level file per height), so without a
// bound a node with thousands of topics runs out of descriptors. The
// least recently used tree that no call is using has its files closed;
// its next call reopens them (docs/ledger.md, "The node's copy").
//
// A *Tree stays valid for its whole life: eviction only happens between
// calls (each call that reads or writes files holds the tree in use), so
// whoever holds a tree, such as the checkpointer of the topic this node
// publishes, never sees its files closed under it. When every open tree
// is in use, the bound is exceeded until one is released.
//
// Lock order: OpenFiles.mu, then Tree.fmu, then Tree.mu.
type OpenFiles struct {
	max int

	mu  sync.Mutex
	lru list.List // of *Tree with files open, most recently used at the front
}

// DefaultMaxOpenTrees is the least default bound of
// WitnessConfig.MaxOpenTrees; see defaultMaxOpenTrees.
const DefaultMaxOpenTrees = 64

// maxOpenTreesCap is the most trees a default bound keeps open.
const maxOpenTreesCap = 1024

// defaultMaxOpenTrees is the bound of open trees when none is configured:
// a 32nd of the process's open-file limit (a tree holds 3 to 40 files,
// a handful for most), between DefaultMaxOpenTrees and maxOpenTreesCap.
// With 64 alone, a crash that hands a node thousands of topics made its
// witness close and reopen copies' files for nearly every round (a tenth
// of a survivor's CPU in openat and close on SQLite).
func defaultMaxOpenTrees() int {
	return min(max(openFileLimit()/32, DefaultMaxOpenTrees), maxOpenTreesCap)
}

// NewOpenFiles returns a bound of max trees with open files (at least 1).
func NewOpenFiles(n int) *OpenFiles { return &OpenFiles{max: max(n, 1)} }

// Open counts the trees whose files are open now.
func (o *OpenFiles) Open() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lru.Len()
}

// touch makes t the most recently used open tree and closes the files of
// the least recently used idle ones beyond the bound (never t's: it was
// just opened or is in use).
func (o *OpenFiles) touch(t *Tree) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if t.elem != nil {
		o.lru.MoveToFront(t.elem)
	} else {
		t.elem = o.lru.PushFront(t)
	}
	for e := o.lru.Back(); e != nil && o.lru.Len() > o.max; {
		prev := e.Prev()
		if v := e.Value.(*Tree); v != t && v.evict() {
			o.lru.Remove(e)
			v.elem = nil
		}
		e = prev
	}
}

// forget drops t (closed for good).
func (o *OpenFiles) forget(t *Tree) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if t.elem != nil {
		o.lru.Remove(t.elem)
		t.elem = nil
	}
}

var errTreeClosed = errors.New("ledger copy is closed")

// use holds the tree's files open until release is called, reopening them
// if they were evicted. Every method that reads or writes the files calls
// it first; none holds t.mu while calling it.
func (t *Tree) use() (release func(), err error) {
	t.fmu.Lock()
	if t.closed {
		t.fmu.Unlock()
		return nil, errTreeClosed
	}
	if t.evicted {
		if err := t.reopen(); err != nil {
			t.fmu.Unlock()
			return nil, err
		}
		t.evicted = false
	}
	t.users++
	t.fmu.Unlock()
	if t.files != nil {
		t.files.touch(t)
	}
	return t.release, nil
}

func (t *Tree) release() {
	t.fmu.Lock()
	t.users--
	t.fmu.Unlock()
}

// evict closes the files of a tree no call is using (OpenFiles.mu held).
func (t *Tree) evict() bool {
	t.fmu.Lock()
	defer t.fmu.Unlock()
	switch {
	case t.closed || t.evicted:
		return true // not open: leave the list
	case t.users > 0:
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nlevels = len(t.levels)
	t.closeFiles() // a failed close of a file read or written through loses nothing: writes are not synced per append anyway
	t.evicted = true
	return true
}

// reopen opens the files evict closed (t.fmu held). They hold what the
// tree had: the in-memory state (size, compact range, upper levels) is
// kept across an eviction.
//
// A tree opened absent (OpenTreeWith) makes its directory and files here.
func (t *Tree) reopen() error {
	flag := os.O_RDWR
	if t.absent {
		if err := os.MkdirAll(t.dir, 0o750); err != nil {
			return fmt.Errorf("open ledger copy: %w", err)
		}
		flag |= os.O_CREATE
	}
	open := func(name string) (*os.File, error) {
		f, err := os.OpenFile(filepath.Join(t.dir, name), flag, 0o640)
		if err != nil {
			return nil, fmt.Errorf("reopen ledger copy: %w", err)
		}
		return f, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var err error
	if t.dat, err = open("entries.dat"); err != nil {
		return err
	}
	if t.idx, err = open("entries.idx"); err != nil {
		t.closeFiles()
		return err
	}
	for level := range t.nlevels {
		f, err := open(levelName(level))
		if err != nil {
			t.closeFiles()
			return err
		}
		t.levels = append(t.levels, f)
	}
	t.absent = false
	return nil
}

// closeFiles closes and forgets every file (t.mu held).
func (t *Tree) closeFiles() error {
	var errs []error
	for _, f := range t.levels {
		errs = append(errs, f.Close())
	}
	t.levels = nil
	if t.dat != nil {
		errs = append(errs, t.dat.Close())
	}
	if t.idx != nil {
		errs = append(errs, t.idx.Close())
	}
	t.dat, t.idx = nil, nil
	return errors.Join(errs...)
}

func levelName(level int) string { return fmt.Sprintf("level-%02d", level) }
