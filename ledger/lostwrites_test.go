package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/sqlite"
)

// lossCluster is two nodes on a SQLite file that the test puts back to
// an older copy: a store that lost writes for real.
type lossCluster struct {
	t      *testing.T
	path   string
	dirs   []string
	stores []*sqlite.Store
	nodes  []*testNode
}

const lossTopic = "lost"

func newLossCluster(t *testing.T) *lossCluster {
	dir := t.TempDir()
	return &lossCluster{t: t, path: filepath.Join(dir, "baton.db"), dirs: []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}}
}

// start starts the nodes on the file, each with its own handle. A sweep
// every 200ms: a checkpoint stored on its own, after the witness's
// follow-ups of the last commit (Poll = 20ms) ended, is seen by the sweep
// (docs/ledger.md, "Idle topics cost nothing").
func (c *lossCluster) start() {
	c.stores, c.nodes = nil, nil
	for i, id := range []string{"node-a", "node-b"} {
		st, err := sqlite.Open(context.Background(), c.path, sqlite.Options{})
		if err != nil {
			c.t.Fatal(err)
		}
		c.stores = append(c.stores, st)
		c.nodes = append(c.nodes, startNodeIn(c.t, st, id, c.dirs[i], 200*time.Millisecond))
	}
}

func (c *lossCluster) stop() {
	for i := range c.nodes {
		c.nodes[i].stop()
		c.stores[i].Close()
	}
}

// accepted waits until every node accepted a checkpoint of size, its copy
// has size leaves and no halt.
func (c *lossCluster) accepted(size uint64) {
	c.t.Helper()
	for _, tn := range c.nodes {
		err := poll.Wait(30*time.Second, func() error {
			s := tn.witness.Status(lossTopic)
			if s == nil || s.CheckpointSize != size || s.Size != size || s.Halted != nil {
				cp, err := tn.store.Checkpoint(context.Background(), lossTopic)
				return fmt.Errorf("status %+v; the store's latest checkpoint %d by %s (%v)", s, cp.Size, cp.Node, err)
			}
			return nil
		})
		if err != nil {
			c.t.Fatalf("%s to accept checkpoint %d: %v", tn.id, size, err)
		}
	}
}

// run publishes 20 items, keeps a copy of the file, publishes 20 more,
// and stops: it returns the older copy.
func (c *lossCluster) run() (older string) {
	older = filepath.Join(c.t.TempDir(), "older.db")
	c.start()
	appendN(c.t, c.stores[0], lossTopic, 20)
	c.accepted(20)
	c.stop()
	copyFile(c.t, c.path, older)
	c.start()
	appendFrom(c.t, c.stores[0], lossTopic, 20, 40)
	c.accepted(40)
	c.stop()
	return older
}

// restore puts the file back to copy, with the nodes stopped.
func (c *lossCluster) restore(copy string) {
	copyFile(c.t, copy, c.path)
	for _, ext := range []string{"-wal", "-shm"} {
		os.Remove(c.path + ext)
	}
}

// halted waits until every node halts the topic for the store's cursor
// going back, agreeing up to seq 20.
func (c *lossCluster) halted() {
	c.t.Helper()
	for _, tn := range c.nodes {
		checkFor(c.t, tn.id+" to halt the topic", 30*time.Second, func() bool {
			s := tn.witness.Status(lossTopic)
			return s != nil && s.Halted != nil && s.Alarms > 0
		})
		h := tn.witness.Status(lossTopic).Halted
		if h.Check != baton.HaltCursorBehind || h.Agreed != 20 {
			c.t.Errorf("%s: halt %+v, want %s agreed at 20", tn.id, h, baton.HaltCursorBehind)
		}
	}
}

// TestLostWritesReanchor loses writes for real: a SQLite file is put back
// to an older copy under two nodes whose copies hold more. Every witness
// halts the topic and names the check; Diagnose finds where the store and
// the copy part; a re-anchor from anywhere else is refused; the re-anchor
// from there lifts every halt, the copies are rebuilt from the store and
// new checkpoints are checked and cosigned again; the audit reports the
// re-anchor. Re-anchors from another seq, with another root or by an
// unregistered key, written straight into the store, lift no halt, and
// the audit names the forged ones (docs/ledger.md, "Lost writes and
// re-anchoring").
func TestLostWritesReanchor(t *testing.T) {
	ctx := context.Background()
	const topic = lossTopic
	c := newLossCluster(t)
	older := c.run()
	c.restore(older) // the store loses seqs 21..40
	c.start()
	defer c.stop()
	c.halted()
	stores, nodes := c.stores, c.nodes
	accepted := c.accepted
	st := stores[0]
	for _, tn := range nodes {
		checkFor(t, tn.id+" to halt the topic", 30*time.Second, func() bool {
			s := tn.witness.Status(topic)
			return s != nil && s.Halted != nil && s.Alarms > 0
		})
		h := tn.witness.Status(topic).Halted
		if h.Check != baton.HaltCursorBehind || h.Agreed != 20 {
			t.Errorf("%s: halt %+v, want %s agreed at 20", tn.id, h, baton.HaltCursorBehind)
		}
	}
	appendFrom(t, st, topic, 40, 45) // published as seqs 21..25: other leaves than the copies'
	checkFor(t, "the new items to be published", 30*time.Second, func() bool {
		cur, err := st.Cursor(ctx, topic)
		return err == nil && cur.Seq == 25
	})

	d, err := nodes[1].witness.Diagnose(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Diverged || d.Agreed != 20 || d.FirstDivergent != 21 || d.CopySize != 40 || d.Cursor.Seq != 25 ||
		d.StoreLeaf == nil || d.CopyLeaf == nil || *d.StoreLeaf == *d.CopyLeaf || d.Halted == nil || len(d.Advice) < 3 {
		t.Fatalf("diagnosis: %+v", d)
	}
	if _, err := nodes[1].witness.Reanchor(ctx, topic, 19, "alice", "restored a backup"); !errors.Is(err, baton.ErrInvalid) {
		t.Fatalf("re-anchor from 19: %v, want ErrInvalid", err)
	}
	// Re-anchors the witnesses must refuse, written straight into the
	// store: from another seq than where their copies part, with another
	// root than their copies', and one signed by a key nobody registered.
	stranger, _ := ledger.GenerateKey("mallory")
	for _, bad := range []struct {
		body ledger.ReanchorBody
		key  *ledger.Key
	}{
		{ledger.ReanchorBody{Seq: 19}, nodes[1].key},
		{ledger.ReanchorBody{Seq: 20, Root: baton.Hash{1}}, nodes[1].key},
		{ledger.ReanchorBody{Seq: 20}, stranger},
	} {
		b := bad.body
		b.Topic, b.Node, b.By, b.At, b.Reason, b.LostSize = topic, bad.key.Node, "eve", time.Now(), "forged", d.CopySize
		if b.Root == (baton.Hash{}) {
			tree := nodes[1].witness.Tree(topic)
			if b.Root, err = tree.Root(b.Seq); err != nil {
				t.Fatal(err)
			}
		}
		r, err := ledger.SignReanchor(b, bad.key)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddReanchor(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range nodes {
		checkFor(t, tn.id+" to refuse the re-anchor with another root", 10*time.Second, func() bool {
			s := tn.witness.Status(topic)
			return strings.Contains(s.LastAlarm, "refused the re-anchor of lost by eve")
		})
		if s := tn.witness.Status(topic); s.Halted == nil {
			t.Fatalf("%s took a re-anchor it must refuse", tn.id)
		}
	}
	b, err := nodes[1].witness.Reanchor(ctx, topic, 20, "alice", "restored the backup of phase one")
	if err != nil {
		t.Fatal(err)
	}
	if b.Seq != 20 || b.LostSize != 40 || b.By != "alice" || b.Node != "node-b" {
		t.Fatalf("re-anchor: %+v", b)
	}
	appendFrom(t, st, topic, 45, 60)
	accepted(40) // 20 + 5 + 15 leaves
	for _, tn := range nodes {
		if s := tn.witness.Status(topic); s.Alarms != 0 {
			t.Errorf("%s: %d alarms after the re-anchor (%s)", tn.id, s.Alarms, s.LastAlarm)
		}
	}
	checkFor(t, "a cosigned checkpoint of the new history", 30*time.Second, func() bool {
		cp, err := st.Checkpoint(ctx, topic)
		return err == nil && cp.Size == 40 && len(cp.Cosignatures) == 1
	})

	rep, err := ledger.Audit(ctx, st, topic, ledger.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The audit reports every re-anchor that verifies, and names the
	// forged ones: one signed by an unregistered key, one whose root is
	// not the store's.
	last := rep.Reanchors[len(rep.Reanchors)-1]
	if len(rep.Reanchors) != 3 || last.Seq != 20 || last.Reason != "restored the backup of phase one" || len(rep.Problems) != 2 ||
		!strings.Contains(rep.Problems[0].String(), `re-anchor #3: re-anchor of lost at 20: no registered key for signer "mallory"`) ||
		!strings.Contains(rep.Problems[1].String(), "re-anchor 20: root 0100") {
		t.Fatalf("audit: problems %v, re-anchors %+v", rep.Problems, rep.Reanchors)
	}
}

// appendFrom appends the items m<from> .. m<to-1> (appendN's, further on).
func appendFrom(t *testing.T, st baton.Store, topic string, from, to int) {
	t.Helper()
	var ups []baton.Update
	for j := from; j < to; j++ {
		ups = append(ups, update(j))
	}
	if _, err := st.Append(context.Background(), topic, ups); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointerRefusesAnotherHistory: a checkpointer given the node's
// copy stops, and says so, when the store's ledger is not the copy's
// history: the copy holds more leaves than the store's cursor, or another
// leaf at the store's last seq (the store lost writes, then took others).
// It would otherwise sign leaves the witnesses refuse.
func TestCheckpointerRefusesAnotherHistory(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra int               // leaves the copy holds beyond the store's
		alter func(*baton.Leaf) // changes the copy's leaves
		want  string
	}{
		{"fits", 0, func(*baton.Leaf) {}, ""},
		{"cursor behind", 3, func(*baton.Leaf) {}, "cursor is at 10, but this node's copy holds 13 leaves"},
		{"other leaves", 0, func(l *baton.Leaf) { l.Publisher = "lost" }, "leaf 10 of the store hashes to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := memstore.New(nil)
			const topic = "history"
			appendN(t, st, topic, 10)
			l := acquire(t, st, topic, "node-a")
			leaves := publish(t, st, l)
			for i := range tc.extra {
				leaves = append(leaves, baton.Leaf{Topic: topic, Seq: uint64(11 + i), Epoch: l.Epoch, Publisher: "node-a"})
			}
			for i := range leaves {
				tc.alter(&leaves[i])
			}
			tree, err := ledger.OpenTree(ledger.NewMemCopies(), topic)
			if err != nil {
				t.Fatal(err)
			}
			defer tree.Close()
			if err := tree.Append(leaves); err != nil {
				t.Fatal(err)
			}
			key, _ := ledger.GenerateKey("node-a")
			var alarm atomic.Value
			cp, err := ledger.NewCheckpointer(ledger.CheckpointerConfig{Store: st, Lease: l, Key: key, Tree: tree,
				Every: 5, Interval: 10 * time.Millisecond, OnAlarm: func(msg string) { alarm.Store(msg) }})
			if err != nil {
				t.Fatal(err)
			}
			cp.Start(ctx)
			defer cp.Close()
			if tc.want == "" {
				checkFor(t, "a checkpoint of 10", 10*time.Second, func() bool { return cp.Signed() == 10 })
				return
			}
			select {
			case <-cp.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the checkpointer goes on over another history")
			}
			msg, _ := alarm.Load().(string)
			if err := cp.Err(); err == nil || !strings.Contains(err.Error(), tc.want) || msg != err.Error() {
				t.Fatalf("stopped with %v, alarm %q; want %q", err, msg, tc.want)
			}
		})
	}
}

// TestCheckpointerStopsWhenHalted: a checkpointer told that the node's
// witness halts the topic signs nothing more and stops, at setup or
// before its next signature (CheckpointerConfig.Halted).
func TestCheckpointerStopsWhenHalted(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(nil)
	const topic = "halted"
	appendN(t, st, topic, 10)
	l := acquire(t, st, topic, "node-a")
	publish(t, st, l)
	key, _ := ledger.GenerateKey("node-a")
	var halt atomic.Pointer[baton.LedgerHalt]
	cp, err := ledger.NewCheckpointer(ledger.CheckpointerConfig{Store: st, Lease: l, Key: key, Every: 5, Interval: 10 * time.Millisecond,
		Halted: func() *baton.LedgerHalt { return halt.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	cp.Start(ctx)
	defer cp.Close()
	checkFor(t, "a checkpoint of 10", 10*time.Second, func() bool { return cp.Signed() == 10 })
	halt.Store(&baton.LedgerHalt{Check: baton.HaltCursorBehind, Agreed: 10, Message: "lost"})
	appendN(t, st, topic, 15)
	leaves := publish(t, st, l)
	cp.Committed(leaves, nil)
	select {
	case <-cp.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the checkpointer signs on a halted topic")
	}
	if err := cp.Err(); err == nil || !strings.Contains(err.Error(), "halted (cursor_behind)") || cp.Signed() != 10 {
		t.Fatalf("stopped with %v, signed %d", err, cp.Signed())
	}
}
