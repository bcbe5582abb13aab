package sqlite_test

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/sqlite"
)

// waitCopyTransactions waits until c committed more than tx transactions.
func waitCopyTransactions(t *testing.T, c *sqlite.Copies, tx int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if now, _ := sqlite.CopiesTransactions(c); now > tx {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no transaction after %d in 10s", tx)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCopiesPendingReads: Size, Entry and Nodes see pending appends, and
// those partly stored and partly pending, before any flush.
func TestCopiesPendingReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copies.db")
	c := openCopies(t, path)
	sqlite.SetCopiesFlushDelay(c, time.Hour)
	check := func(topic string, n uint64) {
		t.Helper()
		if got, err := c.Size(topic); err != nil || got != n {
			t.Fatalf("Size(%s) = %d, %v; want %d", topic, got, err, n)
		}
		encs, nodes := copyLeaves(topic, 1, int(n))
		for i, want := range encs {
			if e, err := c.Entry(topic, uint64(i)+1); err != nil || !bytes.Equal(e, want) {
				t.Fatalf("Entry(%s, %d) = %q, %v; want %q", topic, i+1, e, err, want)
			}
		}
		if _, err := c.Entry(topic, n+1); !errors.Is(err, ledger.ErrCopyMissing) {
			t.Fatalf("Entry(%s, %d) past the end: %v", topic, n+1, err)
		}
		ids := make([]ledger.NodeID, len(nodes))
		for i, nd := range nodes {
			ids[i] = nd.NodeID
		}
		hs, err := c.Nodes(topic, ids) // one call, stored and pending
		if err != nil {
			t.Fatal(err)
		}
		for i, nd := range nodes {
			if !bytes.Equal(hs[i], nd.Hash) {
				t.Fatalf("node %d/%d of %s = %x, want %x", nd.Level, nd.Index, topic, hs[i], nd.Hash)
			}
			if h, err := c.Nodes(topic, ids[i:i+1]); err != nil || !bytes.Equal(h[0], nd.Hash) {
				t.Fatalf("Nodes(%s, %d/%d) alone = %x, %v", topic, nd.Level, nd.Index, h, err)
			}
		}
		past := ledger.NodeID{Level: 0, Index: n}
		if _, err := c.Nodes(topic, append(ids, past)); !errors.Is(err, ledger.ErrCopyMissing) {
			t.Fatalf("Nodes of %s past the end: %v", topic, err)
		}
	}
	appendCopyLeaves(t, c, "p", 1, 50)
	appendCopyLeaves(t, c, "p", 51, 30) // across a chunk's end
	if tx, _ := sqlite.CopiesTransactions(c); tx != 0 {
		t.Fatalf("%d transactions before any flush", tx)
	}
	check("p", 80)
	if tx, _ := sqlite.CopiesTransactions(c); tx != 0 {
		t.Fatalf("%d transactions after reads of pending appends", tx)
	}
	// A refused append leaves the pending ones as they were.
	encs, nodes := copyLeaves("p", 82, 1)
	if err := c.Append("p", 82, encs, nodes); !errors.Is(err, ledger.ErrCopyGap) {
		t.Fatalf("Append past the pending: %v, want ErrCopyGap", err)
	}
	encs, nodes = copyLeaves("p", 81, 1)
	skip := []ledger.Node{{NodeID: ledger.NodeID{Level: 0, Index: 81}, Hash: nodes[0].Hash}} // 80 is next
	if err := c.Append("p", 81, encs, skip); !errors.Is(err, ledger.ErrCopyGap) {
		t.Fatalf("Append skipping a pending level's next: %v, want ErrCopyGap", err)
	}
	if err := sqlite.FlushCopies(c); err != nil {
		t.Fatal(err)
	}
	appendCopyLeaves(t, c, "p", 81, 100) // partly into the stored chunks
	tx, _ := sqlite.CopiesTransactions(c)
	check("p", 180)
	if now, _ := sqlite.CopiesTransactions(c); now != tx {
		t.Fatal("a read flushed")
	}
	if err := sqlite.FlushCopies(c); err != nil {
		t.Fatal(err)
	}
	check("p", 180)
	// Reset drops the pending appends with the stored ones.
	appendCopyLeaves(t, c, "p", 181, 3)
	if err := c.Reset("p"); err != nil {
		t.Fatal(err)
	}
	check("p", 0)
	appendCopyLeaves(t, c, "p", 1, 3)
	check("p", 3)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openCopies(t, path)
	check("p", 3)
}

// TestCopiesSaveStateFlushes: a SaveState stores the appends before it,
// of every topic, in its durable commit.
func TestCopiesSaveStateFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copies.db")
	c := openCopies(t, path)
	sqlite.SetCopiesFlushDelay(c, time.Hour)
	appendCopyLeaves(t, c, "x", 1, 5)
	appendCopyLeaves(t, c, "y", 1, 3)
	if tx, dur := sqlite.CopiesTransactions(c); tx != 0 || dur != 0 {
		t.Fatalf("%d transactions (%d durable) before the save", tx, dur)
	}
	if err := c.SaveState("x", []byte("5")); err != nil {
		t.Fatal(err)
	}
	if tx, dur := sqlite.CopiesTransactions(c); tx != 1 || dur != 1 {
		t.Fatalf("%d transactions (%d durable) after the save; want 1, 1", tx, dur)
	}
	if n := sqlite.PendingCopyBytes(c); n != 0 {
		t.Fatalf("%d bytes pending after the save", n)
	}
	b := openCopies(t, path) // what the file holds
	for topic, n := range map[string]uint64{"x": 5, "y": 3} {
		if got, err := b.Size(topic); err != nil || got != n {
			t.Errorf("Size(%s) in the file = %d, %v; want %d", topic, got, err, n)
		}
	}
}

// TestCopiesTimerFlush: pending appends are flushed a while after the
// first, without any other write.
func TestCopiesTimerFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copies.db")
	c := openCopies(t, path)
	sqlite.SetCopiesFlushDelay(c, 10*time.Millisecond)
	appendCopyLeaves(t, c, "t", 1, 4)
	waitCopyTransactions(t, c, 0)
	if _, dur := sqlite.CopiesTransactions(c); dur != 0 {
		t.Errorf("a timer flush committed durably")
	}
	b := openCopies(t, path)
	if n, err := b.Size("t"); err != nil || n != 4 {
		t.Fatalf("Size in the file after the timer flush = %d, %v; want 4", n, err)
	}
	// Armed again by the next append.
	tx, _ := sqlite.CopiesTransactions(c)
	appendCopyLeaves(t, c, "t", 5, 1)
	waitCopyTransactions(t, c, tx)
	if n, err := b.Size("t"); err != nil || n != 5 {
		t.Fatalf("Size in the file after the second timer flush = %d, %v; want 5", n, err)
	}
}

// TestCopiesFlushFailure: a flush that fails keeps the appends pending
// (readable), the topic's next write reports the failure (once, logged
// once), a SaveState is not reported saved while they are not stored, and
// past the bound of pending bytes Append refuses.
func TestCopiesFlushFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copies.db")
	var logs syncBuffer
	c, err := sqlite.OpenCopies(path, sqlite.CopiesOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sqlite.SetCopiesFlushDelay(c, time.Hour)
	disk := errors.New("disk full")
	sqlite.FailCopiesFlushes(c, func() error { return disk })
	appendCopyLeaves(t, c, "f", 1, 3)
	if err := sqlite.FlushCopies(c); !errors.Is(err, disk) {
		t.Fatalf("failing flush: %v, want the disk's error", err)
	}
	if n, err := c.Size("f"); err != nil || n != 3 {
		t.Fatalf("Size after the failed flush = %d, %v; want 3 (pending)", n, err)
	}
	if e, err := c.Entry("f", 3); err != nil || len(e) == 0 {
		t.Fatalf("Entry(f, 3) after the failed flush = %q, %v", e, err)
	}
	encs, nodes := copyLeaves("f", 4, 1)
	if err := c.Append("f", 4, encs, nodes); !errors.Is(err, disk) {
		t.Fatalf("the Append after a failed flush: %v, want the disk's error", err)
	}
	if n, _ := c.Size("f"); n != 3 {
		t.Fatalf("the refused Append stored something: size %d", n)
	}
	if err := c.Append("f", 4, encs, nodes); err != nil { // reported once
		t.Fatal(err)
	}
	for _, topic := range []string{"f", "other"} {
		if err := c.SaveState(topic, []byte("s")); !errors.Is(err, disk) {
			t.Fatalf("SaveState(%s) while appends cannot be stored: %v, want the disk's error", topic, err)
		}
	}
	if _, dur := sqlite.CopiesTransactions(c); dur != 0 {
		t.Fatal("a durable commit while flushes fail")
	}
	if n := strings.Count(logs.String(), "a flush failed"); n != 1 {
		t.Errorf("the failure logged %d times, want once:\n%s", n, logs.String())
	}

	// The bound: 1 MiB leaves, flushed (failing) past 4 MiB, until refused.
	big := bytes.Repeat([]byte{'x'}, 1<<20)
	seq, _ := c.Size("f")
	refused := false
	for range 400 {
		err := c.Append("f", seq+1, [][]byte{big}, nil)
		if err != nil && strings.Contains(err.Error(), "too many appends pending") {
			refused = true
			break
		}
		if err == nil {
			seq++
		}
	}
	if !refused {
		t.Fatalf("Append not refused with %d bytes pending", sqlite.PendingCopyBytes(c))
	}
	if n, _ := c.Size("f"); n != seq {
		t.Fatalf("Size = %d, want %d: the refused Append changed it", n, seq)
	}

	// The disk back: everything pending is stored.
	sqlite.FailCopiesFlushes(c, nil)
	_ = c.SaveState("f", []byte("s")) // may report the last failure once
	if err := c.SaveState("f", []byte("s")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openCopies(t, path)
	if n, err := c.Size("f"); err != nil || n != seq {
		t.Fatalf("Size after reopening = %d, %v; want %d", n, err, seq)
	}
	if s, err := c.State("f"); err != nil || string(s) != "s" {
		t.Fatalf("State after reopening = %q, %v", s, err)
	}
}

// TestCopiesCloseFlushes: Close stores the pending appends.
func TestCopiesCloseFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "copies.db")
	c, err := sqlite.OpenCopies(path, sqlite.CopiesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sqlite.SetCopiesFlushDelay(c, time.Hour)
	appendCopyLeaves(t, c, "c", 1, 70)
	if tx, _ := sqlite.CopiesTransactions(c); tx != 0 {
		t.Fatalf("%d transactions before Close", tx)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if tx, dur := sqlite.CopiesTransactions(c); tx != 1 || dur != 0 {
		t.Fatalf("Close committed %d transactions (%d durable), want 1 (0)", tx, dur)
	}
	c = openCopies(t, path)
	if n, err := c.Size("c"); err != nil || n != 70 {
		t.Fatalf("Size after reopening = %d, %v; want 70", n, err)
	}
	if hs, err := c.Nodes("c", []ledger.NodeID{{Level: 6, Index: 0}, {Level: 0, Index: 69}}); err != nil || len(hs) != 2 {
		t.Fatalf("Nodes after reopening: %v", err)
	}
	appendCopyLeaves(t, c, "c", 71, 1) // the sizes loaded from the file
}

// syncBuffer is a bytes.Buffer for a logger's writes from any goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
