package ledger_test

import (
	"context"
	"errors"
	"github.com/baton-pub/baton/internal/leasetest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/testlog"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/node"
)

// publish commits every appended item under lease, the way the publisher
// does, and returns the leaves.
func publish(t *testing.T, st baton.Store, l baton.Lease) []baton.Leaf {
	t.Helper()
	ctx := context.Background()
	cur, err := st.Cursor(ctx, l.Topic)
	if err != nil {
		t.Fatal(err)
	}
	its, err := st.Items(ctx, l.Topic, cur.Seq, 1000)
	if err != nil || len(its) == 0 {
		t.Fatalf("items after %d: %d, %v", cur.Seq, len(its), err)
	}
	c := baton.Commit{Topic: l.Topic, Epoch: l.Epoch, Holder: l.Holder, PrevSeq: cur.Seq, Items: its, At: time.Now()}
	if _, err := st.Commit(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c.Leaves()
}

// acquire takes topic's lease for holder, for a minute.
func acquire(t *testing.T, st baton.Store, topic, holder string) baton.Lease {
	t.Helper()
	l, err := leasetest.Acquire(context.Background(), st, topic, holder, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func register(t testing.TB, st baton.Store, k *ledger.Key) {
	if err := st.Heartbeat(context.Background(), baton.Member{Node: k.Node, State: baton.MemberIdle, PublicKey: k.Public}, time.Minute); err != nil {
		t.Fatal(err)
	}
}

func signAt(t *testing.T, st baton.Store, l baton.Lease, k *ledger.Key, size uint64, root baton.Hash) baton.Checkpoint {
	t.Helper()
	cp, err := ledger.Sign(ledger.Body{Topic: l.Topic, Size: size, Root: root, Epoch: l.Epoch, Node: l.Holder}, k)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// TestForgedCheckpointRefused: a witness cosigns a true checkpoint and
// refuses, with an alarm, one whose root is not that of the leaves, one
// signed by a key nobody registered, and (where the store can be tampered
// with) a checkpoint rewritten to another root at a size it already saw.
func TestForgedCheckpointRefused(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			st := e.open(t)
			topic := "forged-" + e.name
			wkey, _ := ledger.GenerateKey("node-w")
			// A rewrite in place signals nothing: the witness's sweep finds
			// it (every 100 ms here, once per Sweep in production), whatever
			// the follow-up rounds after the last signal did.
			w, err := ledger.NewWitness(ledger.WitnessConfig{Store: e.open(t), Key: wkey, Copies: ledger.NewMemCopies(), Dir: filepath.Join(t.TempDir(), "w"),
				Poll: 10 * time.Millisecond, CosignEvery: 10 * time.Millisecond, Sweep: 100 * time.Millisecond, SweepRate: 100})
			if err != nil {
				t.Fatal(err)
			}
			w.Start(ctx)
			t.Cleanup(func() { w.Close() })
			appendN(t, st, topic, 10)
			if err := w.Follow(topic); err != nil {
				t.Fatal(err)
			}
			pkey, _ := ledger.GenerateKey("node-p")
			register(t, st, pkey)
			l, err := leasetest.Acquire(ctx, st, topic, "node-p", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			leaves := publish(t, st, l)
			rootOf := func(ls []baton.Leaf) baton.Hash {
				tr, err := ledger.OpenTree(ledger.NewMemCopies(), topic)
				if err != nil {
					t.Fatal(err)
				}
				defer tr.Close()
				if err := tr.Append(ls); err != nil {
					t.Fatal(err)
				}
				r, _ := tr.Root(uint64(len(ls)))
				return r
			}
			good := signAt(t, st, l, pkey, 5, rootOf(leaves[:5]))
			if err := st.AddCheckpoint(ctx, good); err != nil {
				t.Fatal(err)
			}
			cosigned := func(size uint64) bool {
				cps, _ := st.Checkpoints(ctx, topic, size-1, 1)
				return len(cps) == 1 && cps[0].Size == size && len(cps[0].Cosignatures) == 1
			}
			checkFor(t, "the witness to cosign the true checkpoint", 10*time.Second, func() bool { return cosigned(5) })

			// A wrong root, signed by the lease holder's registered key.
			var bad baton.Hash
			bad[0] = 0xba
			if err := st.AddCheckpoint(ctx, signAt(t, st, l, pkey, 8, bad)); err != nil {
				t.Fatal(err)
			}
			checkFor(t, "an alarm on the wrong root", 10*time.Second, func() bool { return w.Status(topic).Alarms == 1 })
			if s := w.Status(topic); !strings.Contains(s.LastAlarm, "refused checkpoint 8") || !strings.Contains(s.LastAlarm, "hashes to") {
				t.Fatalf("alarm: %q", s.LastAlarm)
			}
			if a := w.Alarmed(); len(a) != 1 || a[0].Topic != topic || a[0].Alarms != 1 || !strings.Contains(a[0].Last, "refused checkpoint 8") {
				t.Fatalf("alarmed topics: %+v, want %s with its one alarm", a, topic)
			}

			// A key nobody registered, for a holder that did not register.
			if err := st.Release(ctx, l, baton.ReasonReleased); err != nil {
				t.Fatal(err)
			}
			mkey, _ := ledger.GenerateKey("mallory")
			ml, err := leasetest.Acquire(ctx, st, topic, "mallory", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, st, topic, 0)
			if err := st.AddCheckpoint(ctx, signAt(t, st, ml, mkey, 10, rootOf(leaves))); err != nil {
				t.Fatal(err)
			}
			checkFor(t, "an alarm on the unknown key", 10*time.Second, func() bool { return w.Status(topic).Alarms == 2 })
			if s := w.Status(topic); !strings.Contains(s.LastAlarm, "no registered key") {
				t.Fatalf("alarm: %q", s.LastAlarm)
			}
			for _, size := range []uint64{8, 10} {
				if cosigned(size) {
					t.Fatalf("the witness cosigned forged checkpoint %d", size)
				}
			}
			if s := w.Status(topic); s.CheckpointSize != 5 || s.CosignedSize != 5 {
				t.Fatalf("witness accepted beyond the true checkpoint: %+v", s)
			}

			// A checkpoint rewritten in place: same size, another root, even
			// with a valid signature.
			if e.tamper == nil {
				return
			}
			forged := signAt(t, st, l, pkey, 5, bad)
			e.tamper.checkpointRoot(t, topic, 5, bad)
			e.tamper.checkpointNote(t, topic, 5, forged.Note)
			// Make the rewritten checkpoint the latest the witness reads.
			checkFor(t, "an equivocation alarm", 10*time.Second, func() bool {
				s := w.Status(topic)
				return s.Alarms >= 3 && strings.Contains(s.LastAlarm, "saw root")
			})
		})
	}
}

// TestFencedCheckpointer: a publisher that lost its lease can neither
// commit leaves nor store a checkpoint, and its checkpointer stops.
func TestFencedCheckpointer(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			st := e.open(t)
			topic := "zombie-" + e.name
			key, _ := ledger.GenerateKey("node-a")
			appendN(t, st, topic, 10)
			l, err := leasetest.Acquire(ctx, st, topic, "node-a", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			cp, err := ledger.NewCheckpointer(ledger.CheckpointerConfig{Store: st, Lease: l, Key: key, Every: 5, Interval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			cp.Start(ctx)
			defer cp.Close()
			cp.Committed(publish(t, st, l), nil)
			checkFor(t, "a checkpoint of 10", 10*time.Second, func() bool { return cp.Signed() == 10 })

			// The lease is lost: another node takes over.
			if err := st.Release(ctx, l, baton.ReasonExpired+"x"); err == nil {
				t.Fatal("bad reason accepted")
			}
			if err := st.Release(ctx, l, baton.ReasonFailed); err != nil {
				t.Fatal(err)
			}
			l2, err := leasetest.Acquire(ctx, st, topic, "node-b", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			appendN(t, st, topic, 10) // msg ids m0..m9 again: duplicates, nothing new
			var more []baton.Update
			for i := 0; i < 5; i++ {
				more = append(more, baton.Update{ID: "z", Value: []byte("1"), MsgID: "z" + string(rune('a'+i))})
			}
			if _, err := st.Append(ctx, topic, more); err != nil {
				t.Fatal(err)
			}
			its, _ := st.Items(ctx, topic, 10, 10)
			c := baton.Commit{Topic: topic, Epoch: l.Epoch, Holder: l.Holder, PrevSeq: 10, Items: its, At: time.Now()}
			if _, err := st.Commit(ctx, c); !errors.Is(err, baton.ErrFenced) {
				t.Fatalf("zombie commit: %v, want ErrFenced", err)
			}
			if err := st.AddCheckpoint(ctx, signAt(t, st, l, key, 10, baton.Hash{})); !errors.Is(err, baton.ErrFenced) {
				t.Fatalf("zombie checkpoint: %v, want ErrFenced", err)
			}
			// The new holder publishes; the zombie's checkpointer, told of
			// those leaves, is fenced when it signs, and stops.
			leaves := publish(t, st, l2)
			cp.Committed(leaves, nil)
			select {
			case <-cp.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("timed out after 10s waiting for the zombie checkpointer to stop")
			}
			if err := cp.Err(); !errors.Is(err, baton.ErrLeaseLost) || cp.Size() != 15 {
				t.Fatalf("zombie checkpointer stopped with %v at %d leaves, want fenced at 15", err, cp.Size())
			}
			latest, err := st.Checkpoint(ctx, topic)
			if err != nil || latest.Size != 10 || latest.Epoch != l.Epoch {
				t.Fatalf("latest checkpoint: %+v %v (the zombie must not have added one)", latest, err)
			}
		})
	}
}

// TestLedgerMismatchStopsPublishing: a node that wins a topic whose stored
// leaves do not hash to the latest checkpoint's root raises the alarm and
// does not publish on without signing: its lease ends as failed, and no
// checkpoint is ever stored over the one that does not add up.
func TestLedgerMismatchStopsPublishing(t *testing.T) {
	for _, e := range engines(t) {
		t.Run(e.name, func(t *testing.T) {
			ctx := context.Background()
			st := e.open(t)
			topic := "mismatch-" + e.name
			appendN(t, st, topic, 20)
			xkey, _ := ledger.GenerateKey("node-x")
			lx := acquire(t, st, topic, "node-x")
			publish(t, st, lx)
			// A checkpoint whose root is not that of leaves 1..20.
			if err := st.AddCheckpoint(ctx, signAt(t, st, lx, xkey, 20, baton.Hash{1})); err != nil {
				t.Fatal(err)
			}
			if err := st.Release(ctx, lx, baton.ReasonReleased); err != nil {
				t.Fatal(err)
			}
			key, _ := ledger.GenerateKey("node-a")
			n, err := node.New(e.open(t), node.Config{Node: "node-a", TTL: time.Second, Key: key,
				CheckpointEvery: 5, CheckpointInterval: 20 * time.Millisecond, Logger: testlog.New(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			appendN(t, st, topic, 30) // m20..m29 are new
			checkFor(t, "node-a's lease to end as failed", 20*time.Second, func() bool {
				hs, err := st.Handovers(ctx, topic, 100)
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range hs {
					if h.Holder == "node-a" && h.Reason == baton.ReasonFailed {
						return true
					}
				}
				return false
			})
			cp, err := st.Checkpoint(ctx, topic)
			if err != nil || cp.Size != 20 || cp.Node != "node-x" {
				t.Fatalf("latest checkpoint: size %d by %s (%v), want the mismatched one of 20 by node-x", cp.Size, cp.Node, err)
			}
		})
	}
}
