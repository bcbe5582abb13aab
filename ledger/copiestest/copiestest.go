// Package copiestest is the conformance suite of ledger.Copies: every
// engine of a node's ledger copies passes it (docs/ledger.md, "The node's
// copy").
package copiestest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/baton-pub/baton/ledger"
)

// Opener opens the copies kept in one place. A call after the first opens
// again what the earlier ones wrote (the suite closes the earlier one
// first): a restart of the node.
type Opener func() (ledger.Copies, error)

// Run runs the suite; newOpener gives each subtest a place of its own.
func Run(t *testing.T, newOpener func(t *testing.T) Opener) {
	t.Run("AppendAndRead", func(t *testing.T) { appendAndRead(t, open(t, newOpener(t))) })
	t.Run("Gap", func(t *testing.T) { gap(t, open(t, newOpener(t))) })
	t.Run("TopicsApart", func(t *testing.T) { topicsApart(t, open(t, newOpener(t))) })
	t.Run("Reset", func(t *testing.T) { reset(t, open(t, newOpener(t))) })
	t.Run("State", func(t *testing.T) { state(t, open(t, newOpener(t))) })
	t.Run("Reopen", func(t *testing.T) { reopen(t, newOpener(t)) })
	t.Run("Concurrent", func(t *testing.T) { concurrent(t, open(t, newOpener(t))) })
	t.Run("Closed", func(t *testing.T) { closed(t, newOpener(t)) })
}

func open(t *testing.T, o Opener) ledger.Copies {
	t.Helper()
	c, err := o()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func enc(topic string, seq uint64) []byte { return fmt.Appendf(nil, "%s/leaf-%d", topic, seq) }

func hash(topic string, id ledger.NodeID, gen int) []byte {
	h := make([]byte, 32)
	copy(h, fmt.Sprintf("%s/%d/%d/%d", topic, id.Level, id.Index, gen))
	return h
}

// add appends leaves first..first+n-1 with a level-0 node per leaf and a
// level-1 node per pair completed.
func add(t *testing.T, c ledger.Copies, topic string, first uint64, n int) {
	t.Helper()
	var encs [][]byte
	var nodes []ledger.Node
	for i := range uint64(n) {
		seq := first + i
		encs = append(encs, enc(topic, seq))
		id := ledger.NodeID{Level: 0, Index: seq - 1}
		nodes = append(nodes, ledger.Node{NodeID: id, Hash: hash(topic, id, 0)})
		if seq%2 == 0 {
			id := ledger.NodeID{Level: 1, Index: seq/2 - 1}
			nodes = append(nodes, ledger.Node{NodeID: id, Hash: hash(topic, id, 0)})
		}
	}
	if err := c.Append(topic, first, encs, nodes); err != nil {
		t.Fatalf("Append(%s, %d, %d leaves): %v", topic, first, n, err)
	}
}

func wantSize(t *testing.T, c ledger.Copies, topic string, want uint64) {
	t.Helper()
	if n, err := c.Size(topic); err != nil || n != want {
		t.Fatalf("Size(%s) = %d, %v; want %d", topic, n, err, want)
	}
}

// check reads every leaf and node add wrote for leaves 1..n.
func check(t *testing.T, c ledger.Copies, topic string, n uint64) {
	t.Helper()
	wantSize(t, c, topic, n)
	var ids []ledger.NodeID
	for seq := uint64(1); seq <= n; seq++ {
		e, err := c.Entry(topic, seq)
		if err != nil || !bytes.Equal(e, enc(topic, seq)) {
			t.Fatalf("Entry(%s, %d) = %q, %v; want %q", topic, seq, e, err, enc(topic, seq))
		}
		ids = append(ids, ledger.NodeID{Level: 0, Index: seq - 1})
		if seq%2 == 0 {
			ids = append(ids, ledger.NodeID{Level: 1, Index: seq/2 - 1})
		}
	}
	// Ranges of leaves: the whole, one, and spans across the engines'
	// chunks of 64.
	for _, w := range [][2]uint64{{1, n}, {1, 1}, {n, 1}, {n/2 + 1, n - n/2}, {60, 10}, {63, 70}, {64, 64}, {65, 128}} {
		if w[0] == 0 || w[1] == 0 || w[0]+w[1]-1 > n {
			continue
		}
		es, err := c.Entries(topic, w[0], int(w[1]))
		if err != nil || uint64(len(es)) != w[1] {
			t.Fatalf("Entries(%s, %d, %d) = %d leaves, %v", topic, w[0], w[1], len(es), err)
		}
		for i, e := range es {
			if seq := w[0] + uint64(i); !bytes.Equal(e, enc(topic, seq)) {
				t.Fatalf("Entries(%s, %d, %d): leaf %d = %q, want %q", topic, w[0], w[1], seq, e, enc(topic, seq))
			}
		}
	}
	for _, w := range [][2]uint64{{n, 2}, {n + 1, 1}, {0, 1}} {
		if _, err := c.Entries(topic, w[0], int(w[1])); !errors.Is(err, ledger.ErrCopyMissing) {
			t.Fatalf("Entries(%s, %d, %d) of a copy of %d leaves: %v, want ErrCopyMissing", topic, w[0], w[1], n, err)
		}
	}
	if len(ids) == 0 {
		return
	}
	hs, err := c.Nodes(topic, ids)
	if err != nil || len(hs) != len(ids) {
		t.Fatalf("Nodes(%s, %d ids) = %d hashes, %v", topic, len(ids), len(hs), err)
	}
	for i, id := range ids {
		if !bytes.Equal(hs[i], hash(topic, id, 0)) {
			t.Fatalf("Nodes(%s): node %d/%d = %x, want %x", topic, id.Level, id.Index, hs[i], hash(topic, id, 0))
		}
	}
}

func appendAndRead(t *testing.T, c ledger.Copies) {
	wantSize(t, c, "a", 0)
	add(t, c, "a", 1, 1)
	add(t, c, "a", 2, 6)
	add(t, c, "a", 8, 93)
	check(t, c, "a", 100)
	// An empty append of nodes only (a range's hashes) is allowed.
	id := ledger.NodeID{Level: 2, Index: 0}
	if err := c.Append("a", 101, nil, []ledger.Node{{NodeID: id, Hash: hash("a", id, 0)}}); err != nil {
		t.Fatalf("Append of a node only: %v", err)
	}
	if hs, err := c.Nodes("a", []ledger.NodeID{id}); err != nil || !bytes.Equal(hs[0], hash("a", id, 0)) {
		t.Fatalf("Nodes after a node-only append = %x, %v", hs, err)
	}
	// Nodes must continue their level: a gap, a repeat or a node out of
	// order is refused, and nothing of the append is stored.
	for _, bad := range [][]ledger.NodeID{
		{{Level: 2, Index: 2}},                       // gap: 1 is next
		{{Level: 2, Index: 0}},                       // stored already
		{{Level: 3, Index: 1}},                       // gap: none stored
		{{Level: 2, Index: 1}, {Level: 2, Index: 3}}, // gap inside
		{{Level: 9, Index: 0}, {Level: 2, Index: 0}}, // a good one, then a repeat
	} {
		var nodes []ledger.Node
		for _, id := range bad {
			nodes = append(nodes, ledger.Node{NodeID: id, Hash: hash("a", id, 1)})
		}
		if err := c.Append("a", 101, [][]byte{enc("a", 101)}, nodes); !errors.Is(err, ledger.ErrCopyGap) {
			t.Errorf("Append of nodes %v: %v, want ErrCopyGap", bad, err)
		}
		wantSize(t, c, "a", 100)
		if _, err := c.Nodes("a", []ledger.NodeID{{Level: 9, Index: 0}}); !errors.Is(err, ledger.ErrCopyMissing) {
			t.Errorf("a refused append stored a node: %v", err)
		}
	}
	if hs, err := c.Nodes("a", []ledger.NodeID{id}); err != nil || !bytes.Equal(hs[0], hash("a", id, 0)) {
		t.Fatalf("node 2/0 after refused appends = %x, %v; want the first hash", hs, err)
	}
	// Nodes well past a chunk of any size, in several appends.
	var more []ledger.Node
	for i := uint64(1); i < 300; i++ {
		id := ledger.NodeID{Level: 2, Index: i}
		more = append(more, ledger.Node{NodeID: id, Hash: hash("a", id, 0)})
		if i%97 == 0 || i == 299 {
			if err := c.Append("a", 101, nil, more); err != nil {
				t.Fatal(err)
			}
			more = nil
		}
	}
	var ids []ledger.NodeID
	for i := uint64(0); i < 300; i++ {
		ids = append(ids, ledger.NodeID{Level: 2, Index: i})
	}
	hs, err := c.Nodes("a", ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hs {
		if !bytes.Equal(h, hash("a", ids[i], 0)) {
			t.Fatalf("node 2/%d = %x, want %x", i, h, hash("a", ids[i], 0))
		}
	}
	// What is not stored is ErrCopyMissing.
	for _, seq := range []uint64{0, 101, 1 << 40} {
		if _, err := c.Entry("a", seq); !errors.Is(err, ledger.ErrCopyMissing) {
			t.Errorf("Entry(a, %d): %v, want ErrCopyMissing", seq, err)
		}
	}
	if _, err := c.Entry("none", 1); !errors.Is(err, ledger.ErrCopyMissing) {
		t.Errorf("Entry of a topic never written: %v, want ErrCopyMissing", err)
	}
	if _, err := c.Nodes("a", []ledger.NodeID{{Level: 0, Index: 0}, {Level: 0, Index: 100}}); !errors.Is(err, ledger.ErrCopyMissing) {
		t.Errorf("Nodes with one not stored: %v, want ErrCopyMissing", err)
	}
	if _, err := c.Nodes("none", []ledger.NodeID{{Level: 0, Index: 0}}); !errors.Is(err, ledger.ErrCopyMissing) {
		t.Errorf("Nodes of a topic never written: %v, want ErrCopyMissing", err)
	}
}

func gap(t *testing.T, c ledger.Copies) {
	add(t, c, "g", 1, 3)
	for _, first := range []uint64{0, 1, 3, 5} {
		id := ledger.NodeID{Level: 5, Index: 9}
		err := c.Append("g", first, [][]byte{enc("g", first)}, []ledger.Node{{NodeID: id, Hash: hash("g", id, 0)}})
		if !errors.Is(err, ledger.ErrCopyGap) {
			t.Errorf("Append(g, first %d) with 3 stored: %v, want ErrCopyGap", first, err)
		}
		// Nothing of a refused append is stored.
		if _, err := c.Nodes("g", []ledger.NodeID{id}); !errors.Is(err, ledger.ErrCopyMissing) {
			t.Errorf("a refused append stored its node: %v", err)
		}
	}
	check(t, c, "g", 3)
	if err := c.Append("new", 2, [][]byte{enc("new", 2)}, nil); !errors.Is(err, ledger.ErrCopyGap) {
		t.Errorf("Append(new, first 2) to an empty copy: %v, want ErrCopyGap", err)
	}
	wantSize(t, c, "new", 0)
}

func topicsApart(t *testing.T, c ledger.Copies) {
	// Names that share prefixes, and the characters topics may have.
	topics := []string{"t", "t1", "t10", "t.1", "t-1", "t_1", "T"}
	for i, topic := range topics {
		add(t, c, topic, 1, i+1)
	}
	for i, topic := range topics {
		check(t, c, topic, uint64(i+1))
	}
	if err := c.SaveState("t1", []byte("s1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Reset("t"); err != nil {
		t.Fatal(err)
	}
	wantSize(t, c, "t", 0)
	for i, topic := range topics[1:] {
		check(t, c, topic, uint64(i+2))
	}
	if s, err := c.State("t1"); err != nil || string(s) != "s1" {
		t.Fatalf("State(t1) after another topic's reset = %q, %v", s, err)
	}
}

func reset(t *testing.T, c ledger.Copies) {
	add(t, c, "r", 1, 50)
	if err := c.SaveState("r", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := c.Reset("r"); err != nil {
		t.Fatal(err)
	}
	wantSize(t, c, "r", 0)
	if _, err := c.Entry("r", 1); !errors.Is(err, ledger.ErrCopyMissing) {
		t.Errorf("Entry after Reset: %v, want ErrCopyMissing", err)
	}
	if _, err := c.Nodes("r", []ledger.NodeID{{Level: 1, Index: 0}}); !errors.Is(err, ledger.ErrCopyMissing) {
		t.Errorf("Nodes after Reset: %v, want ErrCopyMissing", err)
	}
	if s, err := c.State("r"); err != nil || string(s) != "kept" {
		t.Errorf("State after Reset = %q, %v; Reset keeps the state", s, err)
	}
	// A reset copy starts again at seq 1.
	add(t, c, "r", 1, 4)
	check(t, c, "r", 4)
	if err := c.Reset("never"); err != nil {
		t.Errorf("Reset of a topic never written: %v", err)
	}
}

func state(t *testing.T, c ledger.Copies) {
	if s, err := c.State("s"); err != nil || s != nil {
		t.Fatalf("State of a topic never saved = %q, %v; want nil", s, err)
	}
	for _, v := range []string{"one", "two, longer", "3"} {
		if err := c.SaveState("s", []byte(v)); err != nil {
			t.Fatal(err)
		}
		if s, err := c.State("s"); err != nil || string(s) != v {
			t.Fatalf("State = %q, %v; want %q", s, err, v)
		}
	}
	// A state with no leaves, and leaves with no state.
	wantSize(t, c, "s", 0)
	add(t, c, "nostate", 1, 2)
	if s, err := c.State("nostate"); err != nil || s != nil {
		t.Fatalf("State of a topic with leaves only = %q, %v; want nil", s, err)
	}
}

func reopen(t *testing.T, o Opener) {
	c, err := o()
	if err != nil {
		t.Fatal(err)
	}
	add(t, c, "p", 1, 40)
	add(t, c, "q", 1, 3)
	if err := c.SaveState("p", []byte("accepted 40")); err != nil {
		t.Fatal(err)
	}
	if err := c.Reset("q"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = open(t, o)
	check(t, c, "p", 40)
	wantSize(t, c, "q", 0)
	if s, err := c.State("p"); err != nil || string(s) != "accepted 40" {
		t.Fatalf("State after reopening = %q, %v", s, err)
	}
	add(t, c, "p", 41, 2)
	check(t, c, "p", 42)
}

// concurrent: appends to many topics at once, each topic's in order, with
// readers beside them; each topic ends whole.
func concurrent(t *testing.T, c ledger.Copies) {
	const topics, rounds, per = 16, 20, 5
	var wg sync.WaitGroup
	errs := make(chan error, topics*2)
	for i := range topics {
		topic := fmt.Sprintf("c%d", i)
		wg.Go(func() {
			for r := range uint64(rounds) {
				var encs [][]byte
				var nodes []ledger.Node
				for j := range uint64(per) {
					seq := r*per + j + 1
					encs = append(encs, enc(topic, seq))
					id := ledger.NodeID{Level: 0, Index: seq - 1}
					nodes = append(nodes, ledger.Node{NodeID: id, Hash: hash(topic, id, 0)})
					if seq%2 == 0 {
						id := ledger.NodeID{Level: 1, Index: seq/2 - 1}
						nodes = append(nodes, ledger.Node{NodeID: id, Hash: hash(topic, id, 0)})
					}
				}
				if err := c.Append(topic, r*per+1, encs, nodes); err != nil {
					errs <- err
					return
				}
				if err := c.SaveState(topic, fmt.Appendf(nil, "%d", r)); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for range rounds {
				n, err := c.Size(topic)
				if err != nil {
					errs <- err
					return
				}
				if n > 0 {
					if e, err := c.Entry(topic, n); err != nil || !bytes.Equal(e, enc(topic, n)) {
						errs <- fmt.Errorf("Entry(%s, %d) beside appends = %q, %v", topic, n, e, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range topics {
		check(t, c, fmt.Sprintf("c%d", i), rounds*per)
	}
}

func closed(t *testing.T, o Opener) {
	c, err := o()
	if err != nil {
		t.Fatal(err)
	}
	add(t, c, "x", 1, 1)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Size("x"); err == nil {
		t.Error("Size after Close: no error")
	}
	if err := c.Append("x", 2, [][]byte{enc("x", 2)}, nil); err == nil {
		t.Error("Append after Close: no error")
	}
	if err := c.SaveState("x", []byte("s")); err == nil {
		t.Error("SaveState after Close: no error")
	}
}
