package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/ledger/copiestest"
	"github.com/baton-pub/baton/sqlite"
)

func TestCopiesConformance(t *testing.T) {
	copiestest.Run(t, func(t *testing.T) copiestest.Opener {
		path := filepath.Join(t.TempDir(), "copies.db")
		return func() (ledger.Copies, error) { return sqlite.OpenCopies(path, sqlite.CopiesOptions{}) }
	})
}

func openCopies(t testing.TB, path string) *sqlite.Copies {
	t.Helper()
	c, err := sqlite.OpenCopies(path, sqlite.CopiesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// copyLeafNodes are the node hashes a tree gains with leaf seq (1-based):
// its leaf hash and the parents it completes, two per leaf on average.
func copyLeafNodes(topic string, seq uint64) []ledger.Node {
	return copyLeafNodesFrom(topic, seq, 0)
}

// copyLeafNodesFrom: copyLeafNodes of level minLevel and above (a
// ledger.Tree stores levels 6 and above).
func copyLeafNodesFrom(topic string, seq uint64, minLevel uint) []ledger.Node {
	var ns []ledger.Node
	for level := minLevel; level < uint(bits.TrailingZeros64(seq))+1; level++ {
		id := ledger.NodeID{Level: level, Index: seq>>level - 1}
		h := make([]byte, 32)
		copy(h, fmt.Sprintf("%s/%d/%d", topic, id.Level, id.Index))
		ns = append(ns, ledger.Node{NodeID: id, Hash: h})
	}
	return ns
}

// copyLeaves are the encodings and node hashes of n leaves from first.
func copyLeaves(topic string, first uint64, n int) ([][]byte, []ledger.Node) {
	return copyLeavesFrom(topic, first, n, 0)
}

// copyLeavesFrom: copyLeaves with the nodes of level minLevel and above.
func copyLeavesFrom(topic string, first uint64, n int, minLevel uint) ([][]byte, []ledger.Node) {
	encs := make([][]byte, 0, n)
	var nodes []ledger.Node
	for seq := first; seq < first+uint64(n); seq++ {
		encs = append(encs, fmt.Appendf(nil, `{"topic":%q,"seq":%d,"item":"0123456789abcdef0123456789abcdef"}`, topic, seq))
		nodes = append(nodes, copyLeafNodesFrom(topic, seq, minLevel)...)
	}
	return encs, nodes
}

// benchMinLevel: the benchmarks append what a ledger.Tree does, the
// nodes of level 6 and above.
const benchMinLevel = 6

func appendCopyLeaves(t testing.TB, c ledger.Copies, topic string, first uint64, n int) {
	t.Helper()
	encs, nodes := copyLeaves(topic, first, n)
	if err := c.Append(topic, first, encs, nodes); err != nil {
		t.Fatal(err)
	}
}

// holdCopiesLock takes the file's write lock on a connection of its own
// until the returned func: the write that leads the next batch then waits
// in BEGIN, and the writes behind it queue.
func holdCopiesLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
				t.Error(err)
			}
			conn.Close()
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}

// waitCopyWrites waits until c has waiting writes queued and current in the
// batch under way.
func waitCopyWrites(t *testing.T, c *sqlite.Copies, waiting, current int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, cur := sqlite.QueuedCopyWrites(c)
		if w == waiting && cur == current {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queued writes: %d waiting, %d in the batch; want %d and %d", w, cur, waiting, current)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCopiesCreatesFileAndDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "baton")
	path := filepath.Join(dir, "copies.db")
	c := openCopies(t, path)
	appendCopyLeaves(t, c, "t", 1, 1)
	if err := c.SaveState("t", []byte("s")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&^0o750 != 0 {
		t.Errorf("directory mode %v, want 0750 or tighter", fi.Mode())
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&^0o640 != 0 {
			t.Errorf("%s: mode %v, want 0640 or tighter", filepath.Base(name), fi.Mode())
		}
	}
	if c.Path() != path {
		t.Errorf("Path() = %q, want %q", c.Path(), path)
	}
}

// TestCopiesPathCharacters: the path is a file name, not a URI: '?', '#'
// and '%' are its own.
func TestCopiesPathCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a?b#c%20d.db")
	c := openCopies(t, path)
	appendCopyLeaves(t, c, "t", 1, 3)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file is not where the path says: %v", err)
	}
	c = openCopies(t, path)
	if n, err := c.Size("t"); err != nil || n != 3 {
		t.Fatalf("Size after reopening = %d, %v; want 3", n, err)
	}
}

func TestCopiesBadPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", filepath.Join(file, "copies.db"), dir} {
		c, err := sqlite.OpenCopies(path, sqlite.CopiesOptions{})
		if err == nil {
			c.Close()
			t.Errorf("OpenCopies(%q): no error", path)
			continue
		}
		if !strings.Contains(err.Error(), "open ledger copies") || !strings.Contains(err.Error(), path) {
			t.Errorf("OpenCopies(%q): %v; want an error naming the operation and the path", path, err)
		}
	}
	// A file that is not SQLite.
	if _, err := sqlite.OpenCopies(file, sqlite.CopiesOptions{}); err == nil {
		t.Errorf("OpenCopies of a file that is not a database: no error")
	}
}

// TestCopiesTwoHandles: a second OpenCopies of a file open already works;
// both handles read each other's flushed writes. Each checks an Append
// against its own sizes: an append of a seq the other handle stored is
// refused at the flush (it runs the check in the write transaction),
// dropped and reported, and the handle reads the sizes again.
func TestCopiesTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copies.db")
	a := openCopies(t, path)
	b := openCopies(t, path)
	appendCopyLeaves(t, a, "t", 1, 3)
	if err := sqlite.FlushCopies(a); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Size("t"); err != nil || n != 3 {
		t.Fatalf("Size through the other handle = %d, %v; want 3", n, err)
	}
	appendCopyLeaves(t, b, "t", 4, 1)
	if err := sqlite.FlushCopies(b); err != nil {
		t.Fatal(err)
	}
	encs, nodes := copyLeaves("t", 4, 1)
	if err := a.Append("t", 4, encs, nodes); err != nil {
		t.Fatalf("Append at a's size: %v (checked at the flush)", err)
	}
	if err := sqlite.FlushCopies(a); !errors.Is(err, ledger.ErrCopyGap) {
		t.Fatalf("flush of a seq the other handle stored: %v, want ErrCopyGap", err)
	}
	if err := a.Append("t", 5, nil, nil); !errors.Is(err, ledger.ErrCopyGap) {
		t.Fatalf("the next Append after the refused flush: %v, want its ErrCopyGap", err)
	}
	if n, err := a.Size("t"); err != nil || n != 4 {
		t.Fatalf("Size after the refused flush = %d, %v; want 4 (read again)", n, err)
	}
	if err := b.SaveState("t", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if s, err := a.State("t"); err != nil || string(s) != "b" {
		t.Fatalf("State through the other handle = %q, %v", s, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if e, err := b.Entry("t", 4); err != nil || !bytes.Equal(e, encs[0]) {
		t.Fatalf("Entry after the other handle closed = %q, %v", e, err)
	}
}

// TestCopiesLikeMem: edge inputs the suite does not try read as they do
// from MemCopies.
func TestCopiesLikeMem(t *testing.T) {
	c := openCopies(t, filepath.Join(t.TempDir(), "copies.db"))
	m := ledger.NewMemCopies()
	for _, cs := range []ledger.Copies{c, m} {
		name := fmt.Sprintf("%T", cs)
		h0 := bytes.Repeat([]byte{0}, 32) // zero bytes: the chunk is not text
		if err := cs.Append("e", 1, [][]byte{{}, nil}, []ledger.Node{
			{NodeID: ledger.NodeID{Level: 0, Index: 0}, Hash: h0},
			{NodeID: ledger.NodeID{Level: 0, Index: 1}, Hash: h0},
		}); err != nil {
			t.Fatalf("%s: Append of empty encodings: %v", name, err)
		}
		for seq := uint64(1); seq <= 2; seq++ {
			if e, err := cs.Entry("e", seq); err != nil || len(e) != 0 {
				t.Errorf("%s: Entry(e, %d) = %q, %v; want empty", name, seq, e, err)
			}
		}
		if hs, err := cs.Nodes("e", []ledger.NodeID{{Level: 0, Index: 1}, {Level: 0, Index: 0}}); err != nil || !bytes.Equal(hs[0], h0) || !bytes.Equal(hs[1], h0) {
			t.Errorf("%s: Nodes of zero hashes = %x, %v", name, hs, err)
		}
		if hs, err := cs.Nodes("e", nil); err != nil || len(hs) != 0 {
			t.Errorf("%s: Nodes of no ids = %v, %v", name, hs, err)
		}
		if err := cs.SaveState("e", []byte{}); err != nil {
			t.Fatal(err)
		}
		if s, err := cs.State("e"); err != nil || s == nil || len(s) != 0 {
			t.Errorf("%s: State after saving an empty state = %#v, %v; want empty, not nil", name, s, err)
		}
		if err := cs.SaveState("e", nil); err != nil {
			t.Fatal(err)
		}
		if s, err := cs.State("e"); err != nil || s != nil {
			t.Errorf("%s: State after saving nil = %#v, %v; want nil", name, s, err)
		}
		// Seqs and indexes past SQLite's int64.
		const big = uint64(1) << 63
		if err := cs.Append("e", big, [][]byte{{1}}, nil); !errors.Is(err, ledger.ErrCopyGap) {
			t.Errorf("%s: Append at seq 2^63: %v; want ErrCopyGap", name, err)
		}
		if _, err := cs.Entry("e", big); !errors.Is(err, ledger.ErrCopyMissing) {
			t.Errorf("%s: Entry(2^63): %v; want ErrCopyMissing", name, err)
		}
		if _, err := cs.Nodes("e", []ledger.NodeID{{Level: 0, Index: 0}, {Level: 0, Index: big}}); !errors.Is(err, ledger.ErrCopyMissing) {
			t.Errorf("%s: Nodes of index 2^63: %v; want ErrCopyMissing", name, err)
		}
	}
	// What MemCopies could store and SQLite cannot is refused, not wrapped
	// round, and nothing of the append is stored: hashes of other than 32
	// bytes (the engine packs them), indexes past SQLite's int64.
	for _, h := range [][]byte{nil, {}, make([]byte, 31), make([]byte, 33)} {
		err := c.Append("e", 3, [][]byte{{3}}, []ledger.Node{
			{NodeID: ledger.NodeID{Level: 0, Index: 2}, Hash: make([]byte, 32)},
			{NodeID: ledger.NodeID{Level: 1, Index: 0}, Hash: h},
		})
		if err == nil || !strings.Contains(err.Error(), "node 1/0") {
			t.Errorf("Append of a hash of %d bytes: %v; want an error naming the node", len(h), err)
		}
	}
	if err := c.Append("e", 3, nil, []ledger.Node{{NodeID: ledger.NodeID{Level: 0, Index: 1 << 63}, Hash: []byte{1}}}); err == nil {
		t.Error("Append of a node index past 2^63-1: no error")
	}
	if n, err := c.Size("e"); err != nil || n != 2 {
		t.Errorf("Size = %d, %v; want 2", n, err)
	}
}

// TestCopiesNodesMany: reads of many node hashes (more than one
// statement reads, in any order, some asked twice) give what MemCopies
// gives, each hash a slice of its own.
func TestCopiesNodesMany(t *testing.T) {
	c := openCopies(t, filepath.Join(t.TempDir(), "copies.db"))
	m := ledger.NewMemCopies()
	encs, nodes := copyLeaves("n", 1, 300)
	for _, cs := range []ledger.Copies{c, m} {
		if err := cs.Append("n", 1, encs, nodes); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []int{2, 3, 5, 24, 128, 129, 300, 600} {
		ids := make([]ledger.NodeID, k)
		for i := range ids {
			n := nodes[(i*7919)%len(nodes)] // a stride that revisits past 300
			ids[i] = n.NodeID
		}
		got, err := c.Nodes("n", ids)
		if err != nil {
			t.Fatalf("Nodes of %d ids: %v", k, err)
		}
		want, err := m.Nodes("n", ids)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ids {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("Nodes of %d ids: [%d] (node %d/%d) = %x, want %x", k, i, ids[i].Level, ids[i].Index, got[i], want[i])
			}
		}
		for i := range got {
			got[i][0] ^= 0xff // each its own: the others do not change
		}
		for i := range got {
			if got[i][0]^0xff != want[i][0] {
				t.Fatalf("Nodes of %d ids: [%d] shares its bytes with another", k, i)
			}
		}
		missing := append(ids[:k-1:k-1], ledger.NodeID{Level: 9, Index: 1})
		if _, err := c.Nodes("n", missing); !errors.Is(err, ledger.ErrCopyMissing) || !strings.Contains(err.Error(), "node 9/1") {
			t.Fatalf("Nodes of %d ids, the last not stored: %v; want ErrCopyMissing naming it", k, err)
		}
	}
}

// TestCopiesGroupCommit: writes that wait while a transaction runs are
// committed together, with the pending appends, each in its own
// savepoint: a refused one fails alone, the others commit.
func TestCopiesGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copies.db")
	c := openCopies(t, path)
	sqlite.SetCopiesFlushDelay(c, time.Hour) // no timer flush in the way
	appendCopyLeaves(t, c, "gap", 1, 2)
	tx0, dur0 := sqlite.CopiesTransactions(c)

	release := holdCopiesLock(t, path)
	var wg sync.WaitGroup
	first := make(chan error, 1)
	wg.Go(func() { first <- c.SaveState("lead", []byte("lead")) })
	waitCopyWrites(t, c, 0, 1) // its batch under way, waiting for the lock

	const topics = 60
	errs := make(chan error, 4*topics)
	for i := range topics {
		topic := fmt.Sprintf("g%d", i)
		// Buffered: it returns at once.
		appendCopyLeaves(t, c, topic, 1, i%5+1)
		wg.Go(func() { errs <- c.SaveState(topic, []byte(topic)) })
		wg.Go(func() { errs <- c.Reset(topic + "-none") })
	}
	encs, nodes := copyLeaves("gap", 5, 1)
	if err := c.Append("gap", 5, encs, nodes); !errors.Is(err, ledger.ErrCopyGap) || !strings.Contains(err.Error(), "append to gap") {
		t.Fatalf("the append with a gap: %v; want ErrCopyGap naming the topic", err)
	}
	waitCopyWrites(t, c, 2*topics, 1)
	release()
	wg.Wait()
	close(errs)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	tx, dur := sqlite.CopiesTransactions(c)
	if tx-tx0 != 2 || dur-dur0 != 2 {
		t.Errorf("%d transactions (%d durable) for %d writes; want 2 (2): the lone first and the rest", tx-tx0, dur-dur0, 2*topics+1)
	}
	b := openCopies(t, path) // what the file holds
	for i := range topics {
		topic := fmt.Sprintf("g%d", i)
		if n, err := b.Size(topic); err != nil || n != uint64(i%5+1) {
			t.Errorf("Size(%s) = %d, %v; want %d", topic, n, err, i%5+1)
		}
		if s, err := b.State(topic); err != nil || string(s) != topic {
			t.Errorf("State(%s) = %q, %v", topic, s, err)
		}
	}
	if n, err := b.Size("gap"); err != nil || n != 2 {
		t.Errorf("Size(gap) = %d, %v; want 2: the refused append stored nothing", n, err)
	}

	// More than a batch takes wait for the next.
	release = holdCopiesLock(t, path)
	wg.Go(func() { first <- c.Reset("lead") })
	waitCopyWrites(t, c, 0, 1)
	n := sqlite.MaxCopyBatch + 10
	errs = make(chan error, n)
	for i := range n {
		wg.Go(func() { errs <- c.SaveState(fmt.Sprintf("m%d", i), []byte("m")) })
	}
	waitCopyWrites(t, c, n, 1)
	release()
	wg.Wait()
	close(errs)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if tx2, _ := sqlite.CopiesTransactions(c); tx2-tx != 3 {
		t.Errorf("%d transactions for 1 + %d writes; want 3 (batches of at most %d)", tx2-tx, n, sqlite.MaxCopyBatch)
	}
}

// TestCopiesConcurrentWritesGroup: many goroutines appending and saving
// at once share transactions without any help.
func TestCopiesConcurrentWritesGroup(t *testing.T) {
	c := openCopies(t, filepath.Join(t.TempDir(), "copies.db"))
	const writers, rounds = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		topic := fmt.Sprintf("w%d", i)
		wg.Go(func() {
			for r := range uint64(rounds) {
				encs, nodes := copyLeaves(topic, r+1, 1)
				if err := c.Append(topic, r+1, encs, nodes); err != nil {
					errs <- err
					return
				}
				if err := c.SaveState(topic, fmt.Appendf(nil, "%d", r)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tx, dur := sqlite.CopiesTransactions(c)
	t.Logf("%d writes in %d transactions (%d durable)", writers*rounds*2, tx, dur)
	if tx >= writers*rounds*2 {
		t.Errorf("%d transactions for %d writes: none grouped", tx, writers*rounds*2)
	}
}

// TestCopiesDurableCommits: only a transaction carrying a SaveState is
// committed with synchronous=FULL, and the writer's connection runs FULL
// when it is.
func TestCopiesDurableCommits(t *testing.T) {
	c := openCopies(t, filepath.Join(t.TempDir(), "copies.db"))
	const normal, full = 1, 2
	wantSync := func(when string, want int) {
		t.Helper()
		if level, err := sqlite.CopiesSynchronous(c); err != nil || level != want {
			t.Fatalf("synchronous %s = %d, %v; want %d", when, level, err, want)
		}
	}
	wantSync("at open", normal)
	sqlite.SetCopiesFlushDelay(c, time.Hour)
	appendCopyLeaves(t, c, "d", 1, 2)
	if err := c.Reset("x"); err != nil { // flushes the append
		t.Fatal(err)
	}
	wantSync("after an append and a reset", normal)
	if tx, dur := sqlite.CopiesTransactions(c); tx != 1 || dur != 0 {
		t.Fatalf("after an append and a reset: %d transactions, %d durable; want 1, 0", tx, dur)
	}
	for range 2 {
		if err := c.SaveState("d", []byte("s")); err != nil {
			t.Fatal(err)
		}
		// The level a SaveState's commit ran at (it stays until a batch
		// that need not be durable).
		wantSync("after a save", full)
	}
	appendCopyLeaves(t, c, "d", 3, 1)
	if err := sqlite.FlushCopies(c); err != nil {
		t.Fatal(err)
	}
	wantSync("after a flush that followed a save", normal)
	if tx, dur := sqlite.CopiesTransactions(c); tx != 4 || dur != 2 {
		t.Fatalf("after two saves and a flush: %d transactions, %d durable; want 4, 2", tx, dur)
	}
}

// TestCopiesSurviveProcessExit: what a process wrote is there after it
// exits without Close (its WAL is recovered).
func TestCopiesSurviveProcessExit(t *testing.T) {
	if path := os.Getenv("BATON_COPIES_CRASH"); path != "" {
		c, err := sqlite.OpenCopies(path, sqlite.CopiesOptions{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		appendCopyLeaves(t, c, "p", 1, 10)
		if err := c.SaveState("p", []byte("10")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		// After the durable save: flushed by the timer, NORMAL.
		tx, _ := sqlite.CopiesTransactions(c)
		appendCopyLeaves(t, c, "p", 11, 5)
		for deadline := time.Now().Add(10 * time.Second); ; {
			if now, _ := sqlite.CopiesTransactions(c); now > tx {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "no timer flush")
				os.Exit(2)
			}
			time.Sleep(time.Millisecond)
		}
		os.Exit(0) // no Close
	}
	path := filepath.Join(t.TempDir(), "copies.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCopiesSurviveProcessExit$")
	cmd.Env = append(os.Environ(), "BATON_COPIES_CRASH="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	c := openCopies(t, path)
	if n, err := c.Size("p"); err != nil || n != 15 {
		t.Fatalf("Size after the writer's exit = %d, %v; want 15", n, err)
	}
	if s, err := c.State("p"); err != nil || string(s) != "10" {
		t.Fatalf("State after the writer's exit = %q, %v", s, err)
	}
}

// TestCopiesClose: Close flushes the pending appends (after the batch
// under way, which it waits for), later calls fail, and no goroutine is
// left.
func TestCopiesClose(t *testing.T) {
	before := runtime.NumGoroutine()
	path := filepath.Join(t.TempDir(), "copies.db")
	c, err := sqlite.OpenCopies(path, sqlite.CopiesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sqlite.SetCopiesFlushDelay(c, time.Hour)
	appendCopyLeaves(t, c, "a", 1, 1)

	release := holdCopiesLock(t, path)
	inBatch := make(chan error, 1)
	go func() { inBatch <- c.SaveState("a", []byte("s")) }()
	waitCopyWrites(t, c, 0, 1)
	queued := make(chan error, 2)
	go func() { queued <- c.SaveState("q", []byte("q")) }()
	go func() { queued <- c.Reset("z") }()
	waitCopyWrites(t, c, 2, 1)
	appendCopyLeaves(t, c, "a", 2, 1) // pending
	appendCopyLeaves(t, c, "b", 1, 1)
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the batch under way ended", err)
	case <-time.After(20 * time.Millisecond):
	}
	release()
	if err := <-inBatch; err != nil {
		t.Errorf("the write in the batch under way at Close: %v; want it committed", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 2 {
		// Committed with Close's flush, or refused.
		if err := <-queued; err != nil && !errors.Is(err, ledger.ErrCopiesClosed) {
			t.Errorf("a write queued at Close: %v; want nil or ErrCopiesClosed", err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	closedErrs := map[string]error{}
	_, closedErrs["Size"] = c.Size("a")
	_, closedErrs["Entry"] = c.Entry("a", 1)
	_, closedErrs["Nodes"] = c.Nodes("a", []ledger.NodeID{{}})
	_, closedErrs["State"] = c.State("a")
	closedErrs["Append"] = c.Append("a", 3, [][]byte{{1}}, nil)
	closedErrs["Reset"] = c.Reset("a")
	closedErrs["SaveState"] = c.SaveState("a", nil)
	for name, err := range closedErrs {
		if !errors.Is(err, ledger.ErrCopiesClosed) || !strings.Contains(err.Error(), " a") {
			t.Errorf("%s after Close: %v; want ErrCopiesClosed naming the topic", name, err)
		}
	}

	// The pools' goroutines and the flusher are gone.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}

	c = openCopies(t, path)
	if n, err := c.Size("a"); err != nil || n != 2 {
		t.Errorf("Size(a) after reopening = %d, %v; want 2", n, err)
	}
	if n, err := c.Size("b"); err != nil || n != 1 {
		t.Errorf("Size(b) after reopening = %d, %v; want 1: Close flushed it", n, err)
	}
	if s, err := c.State("a"); err != nil || string(s) != "s" {
		t.Errorf("State(a) after reopening = %q, %v", s, err)
	}
}

// TestCopiesCloseUnderLoad: Close while many goroutines write (the lead
// being handed on, or not): every call returns, and a write that returned
// nil is kept while one refused as closed is not.
func TestCopiesCloseUnderLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copies.db")
	const writers = 16
	kept := make([]uint64, writers)
	for round := range 10 {
		c, err := sqlite.OpenCopies(path, sqlite.CopiesOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		started := make(chan struct{}, writers)
		errs := make(chan error, writers)
		for i := range writers {
			topic := fmt.Sprintf("w%d", i)
			wg.Go(func() {
				started <- struct{}{}
				for {
					seq := kept[i] + 1
					encs, nodes := copyLeaves(topic, seq, 1)
					var err error
					if seq%3 == 0 {
						err = c.SaveState(topic, fmt.Appendf(nil, "%d", seq))
						if err == nil {
							err = c.Append(topic, seq, encs, nodes)
						}
					} else {
						err = c.Append(topic, seq, encs, nodes)
					}
					if errors.Is(err, ledger.ErrCopiesClosed) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					kept[i] = seq
				}
			})
		}
		for range writers {
			<-started
		}
		time.Sleep(time.Duration(round) * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	c := openCopies(t, path)
	for i := range writers {
		topic := fmt.Sprintf("w%d", i)
		if n, err := c.Size(topic); err != nil || n != kept[i] {
			t.Errorf("Size(%s) = %d, %v; want %d, the appends that returned nil", topic, n, err, kept[i])
		}
	}
}

// BenchmarkCopiesAppend: the mirror's write path (Append buffers; the
// flusher stores what is pending every 100 ms, and the benchmark flushes
// the rest at its end, timed). batch=N appends N leaves
// (and the nodes a ledger.Tree stores, of level 6 and up) to one topic per op; topics=1000 appends one
// leaf to each of 1,000 topics per op, one after another (serial) or from
// 100 goroutines at once (concurrent, which the group commit batches).
func BenchmarkCopiesAppend(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			c := openCopies(b, filepath.Join(b.TempDir(), "copies.db"))
			seq := uint64(1)
			b.ResetTimer()
			for range b.N {
				// Building the leaves is in the timing: a small part of it.
				encs, nodes := copyLeavesFrom("t", seq, batch, benchMinLevel)
				if err := c.Append("t", seq, encs, nodes); err != nil {
					b.Fatal(err)
				}
				seq += uint64(batch)
			}
			// What is pending is stored in the timing (the flushes before
			// ran on the flusher's goroutine).
			if err := sqlite.FlushCopies(c); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/leaf")
		})
	}
	const topics = 1000
	for _, mode := range []string{"serial", "concurrent"} {
		b.Run("topics=1000/"+mode, func(b *testing.B) {
			c := openCopies(b, filepath.Join(b.TempDir(), "copies.db"))
			names := make([]string, topics)
			for i := range names {
				names[i] = fmt.Sprintf("topic-%04d", i)
			}
			const workers = 100
			b.ResetTimer()
			for r := range uint64(b.N) {
				b.StopTimer()
				encs := make([][][]byte, topics)
				nodes := make([][]ledger.Node, topics)
				for i, topic := range names {
					encs[i], nodes[i] = copyLeavesFrom(topic, r+1, 1, benchMinLevel)
				}
				b.StartTimer()
				if mode == "serial" {
					for i, topic := range names {
						if err := c.Append(topic, r+1, encs[i], nodes[i]); err != nil {
							b.Fatal(err)
						}
					}
					continue
				}
				var wg sync.WaitGroup
				errs := make(chan error, workers)
				for w := range workers {
					wg.Go(func() {
						for i := w; i < topics; i += workers {
							if err := c.Append(names[i], r+1, encs[i], nodes[i]); err != nil {
								errs <- err
								return
							}
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
			}
			if err := sqlite.FlushCopies(c); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*topics), "ns/topic")
			tx, _ := sqlite.CopiesTransactions(c)
			b.ReportMetric(float64(tx)/float64(b.N), "tx/op")
		})
	}
}

// BenchmarkCopiesSaveState: a durable commit (an fsync of the WAL) each,
// from one goroutine and from 8 a CPU at once (which share fsyncs).
func BenchmarkCopiesSaveState(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		c := openCopies(b, filepath.Join(b.TempDir(), "copies.db"))
		for i := range b.N {
			if err := c.SaveState("t", fmt.Appendf(nil, "state %d", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		c := openCopies(b, filepath.Join(b.TempDir(), "copies.db"))
		b.SetParallelism(8)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			topic := fmt.Sprintf("t%d", n.Add(1))
			for i := 0; pb.Next(); i++ {
				if err := c.SaveState(topic, fmt.Appendf(nil, "state %d", i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
		tx, _ := sqlite.CopiesTransactions(c)
		b.ReportMetric(float64(b.N)/float64(tx), "writes/tx")
	})
}

// BenchmarkCopiesRead: the reads a proof or a consistency check makes.
func BenchmarkCopiesRead(b *testing.B) {
	c := openCopies(b, filepath.Join(b.TempDir(), "copies.db"))
	const n = 4096
	for first := uint64(1); first <= n; first += 256 {
		appendCopyLeaves(b, c, "t", first, 256)
	}
	b.Run("Size", func(b *testing.B) {
		for range b.N {
			if _, err := c.Size("t"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Entry", func(b *testing.B) {
		for i := range uint64(b.N) {
			if _, err := c.Entry("t", i%n+1); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, k := range []int{1, 24} {
		b.Run(fmt.Sprintf("Nodes=%d", k), func(b *testing.B) {
			ids := make([]ledger.NodeID, k)
			for i := range b.N {
				for j := range ids {
					ids[j] = ledger.NodeID{Level: 0, Index: uint64(i*k+j) % n}
				}
				if _, err := c.Nodes("t", ids); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCopiesChunkGaps: a node that would start a chunk while the one
// before is not full is a gap, as is one that starts a chunk stored
// already; nothing of the append is stored.
func TestCopiesChunkGaps(t *testing.T) {
	c := openCopies(t, filepath.Join(t.TempDir(), "copies.db"))
	node := func(level uint, index uint64) ledger.Node {
		return ledger.Node{NodeID: ledger.NodeID{Level: level, Index: index}, Hash: bytes.Repeat([]byte{byte(index)}, 32)}
	}
	var nodes []ledger.Node
	for i := range uint64(10) {
		nodes = append(nodes, node(5, i))
	}
	if err := c.Append("g", 1, nil, nodes); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []uint64{64, 128, 0, 9} {
		if err := c.Append("g", 1, [][]byte{{1}}, []ledger.Node{node(5, bad)}); !errors.Is(err, ledger.ErrCopyGap) {
			t.Errorf("Append of node 5/%d after 10: %v; want ErrCopyGap", bad, err)
		}
	}
	if n, err := c.Size("g"); err != nil || n != 0 {
		t.Fatalf("Size = %d, %v; want 0: the refused appends stored nothing", n, err)
	}
	nodes = nodes[:0]
	for i := uint64(10); i < 200; i++ {
		nodes = append(nodes, node(5, i))
	}
	if err := c.Append("g", 1, nil, nodes); err != nil {
		t.Fatal(err)
	}
	if err := c.Append("g", 1, nil, []ledger.Node{node(5, 128)}); !errors.Is(err, ledger.ErrCopyGap) {
		t.Errorf("Append of node 5/128, a chunk's first, stored already: %v; want ErrCopyGap", err)
	}
	if hs, err := c.Nodes("g", []ledger.NodeID{{Level: 5, Index: 199}}); err != nil || hs[0][0] != 199 {
		t.Fatalf("node 5/199 = %x, %v", hs, err)
	}
}

// TestCopiesOldLayout: a file of the first layout (a row per leaf and per
// node) has its leaves and nodes dropped at open, its states kept.
func TestCopiesOldLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copies.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE copy_leaves (topic TEXT NOT NULL, seq INTEGER NOT NULL, enc BLOB, PRIMARY KEY (topic, seq)) WITHOUT ROWID`,
		`CREATE TABLE copy_nodes (topic TEXT NOT NULL, level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB, PRIMARY KEY (topic, level, idx)) WITHOUT ROWID`,
		`CREATE TABLE copy_states (topic TEXT NOT NULL PRIMARY KEY, state BLOB) WITHOUT ROWID`,
		`INSERT INTO copy_leaves VALUES ('t', 1, x'01')`,
		`INSERT INTO copy_nodes VALUES ('t', 0, 0, zeroblob(32))`,
		`INSERT INTO copy_states VALUES ('t', x'73')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	for range 2 { // the second open finds the new layout
		c, err := sqlite.OpenCopies(path, sqlite.CopiesOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := c.Size("t"); err != nil || n != 0 {
			t.Fatalf("Size = %d, %v; want 0: the old leaves dropped", n, err)
		}
		if s, err := c.State("t"); err != nil || string(s) != "s" {
			t.Fatalf("State = %q, %v; want it kept", s, err)
		}
		appendCopyLeaves(t, c, "u", 1, 70)
		if err := c.Reset("u"); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
