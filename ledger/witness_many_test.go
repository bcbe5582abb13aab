package ledger_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/clocktest"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/ledger"
)

// TestWitnessFilesDoNotGrowWithTopics: a witness following 300 topics
// keeps every copy in the node's one copies file: its descriptors and the
// files in its directory are the same few whatever the number of topics,
// while every copy is checked and cosigned, serves proofs that verify and
// takes new leaves; the witness opened again on the file finds every copy
// whole.
func TestWitnessFilesDoNotGrowWithTopics(t *testing.T) {
	const nTopics = 300
	mt := newManyTopics(t, "fd", nTopics)
	m, st, pkey, wkey, topics, pub := mt.m, mt.st, mt.pkey, mt.wkey, mt.topics, mt.pub

	dir := filepath.Join(t.TempDir(), "w")
	base := openFDs(t)
	copies := copiesIn(t, dir)
	w, err := ledger.NewWitness(ledger.WitnessConfig{Store: m.Handle(), Key: wkey, Copies: copies, Dir: dir,
		Poll: 10 * time.Millisecond, CosignEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.Start(context.Background())
	defer w.Close()
	// The bound: the copies file, its WAL and shared memory on each of
	// its connections, and this count; nothing per topic.
	limit := base + 32
	most := 0
	sample := func() {
		n := openFDs(t)
		most = max(most, n)
		if n > limit {
			t.Fatalf("%d descriptors open, above the bound %d (%d before the witness)", n, limit, base)
		}
	}
	for _, topic := range topics {
		if err := w.Follow(topic); err != nil {
			t.Fatal(err)
		}
		sample()
	}
	poll.Until(t, 30*time.Second, "every copy checked and cosigned", func() error {
		sample()
		return settled(w, topics, 3)
	})
	ks := ledger.NewKeys(nil)
	v, _ := pkey.VerifierKey()
	ks.AddVerifierKey(v)
	for _, topic := range topics {
		cp, err := w.Checkpoint(topic)
		if err != nil {
			t.Fatal(err)
		}
		if root, err := w.Tree(topic).Root(cp.Size); err != nil || root != cp.Root {
			t.Fatalf("%s: copy has root %s (%v), checkpoint %s", topic, root, err, cp.Root)
		}
		pr, err := w.Proof(topic, 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ledger.VerifyProof(pr, topic, 2, ks); err != nil {
			t.Fatalf("%s: proof from the copy: %v", topic, err)
		}
		sample()
	}
	// New leaves in every topic.
	for _, topic := range topics {
		appendN(t, st, topic, 5) // m3, m4 are new
		pub[topic].commitSigned(t, st, pkey)
	}
	poll.Until(t, 30*time.Second, "every copy to take the new leaves", func() error {
		sample()
		return settled(w, topics, 5)
	})
	t.Logf("descriptors: %d before the witness, at most %d with %d topics (bound %d)", base, most, nTopics, limit)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) > 3 { // copies.db, and its -wal and -shm while open
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("%d entries in the witness's directory, want the copies file only: %v", len(ents), names)
	}

	// A restart: the witness opened again on the same copies finds each
	// copy whole (the root of the checkpoint it accepted), before any round.
	accepted := map[string]baton.Checkpoint{}
	for _, topic := range topics {
		if accepted[topic], err = w.Checkpoint(topic); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	w2, err := ledger.NewWitness(ledger.WitnessConfig{Store: m.Handle(), Key: wkey, Copies: copies, Dir: dir, Poll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w2.Start(context.Background())
	defer w2.Close()
	for _, topic := range topics {
		if err := w2.Follow(topic); err != nil {
			t.Fatal(err)
		}
		cp := accepted[topic]
		if tr := w2.Tree(topic); tr.Size() != cp.Size {
			t.Fatalf("%s after a restart: copy of %d leaves, checkpoint of %d", topic, tr.Size(), cp.Size)
		}
		if root, err := w2.Tree(topic).Root(cp.Size); err != nil || root != cp.Root {
			t.Fatalf("%s after a restart: root %s (%v), checkpoint %s", topic, root, err, cp.Root)
		}
	}
}

// TestIdleWitnessReadsNothing: once its topics are idle and settled, a
// witness reads the store only for its sweep, one topic at a time: over a
// minute, no topic is read in more than one round; and a commit in one
// topic out of many makes it read that topic only.
func TestIdleWitnessReadsNothing(t *testing.T) {
	const nTopics = 50
	mt := newManyTopics(t, "idle", nTopics)
	m, st, pkey, wkey, topics, pub := mt.m, mt.st, mt.pkey, mt.wkey, mt.topics, mt.pub

	clk := clocktest.New(time.Unix(1800000000, 0))
	cs := newCountingStore(m.Handle())
	w, err := ledger.NewWitness(ledger.WitnessConfig{Store: cs, Key: wkey, Copies: copiesIn(t, filepath.Join(t.TempDir(), "w")), Dir: filepath.Join(t.TempDir(), "w"),
		Poll: time.Second, CosignEvery: time.Second, Sweep: time.Minute, SweepRate: 5, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	w.Start(context.Background())
	defer w.Close()
	for _, topic := range topics {
		if err := w.Follow(topic); err != nil {
			t.Fatal(err)
		}
	}
	// quiet waits until the witness has done what is due now (its one
	// timer re-armed: it is the only user of clk).
	quiet := func() {
		t.Helper()
		poll.True(t, 10*time.Second, "the witness to finish what is due", func() bool {
			return clk.Timers() == 1 && ledger.WitnessIdle(w)
		})
	}
	poll.Until(t, 10*time.Second, "the catch-up", func() error { return settled(w, topics, 3) })
	// Let every follow-up round run: the topics settle within a few
	// delays (1, 2, 4, 8 Poll).
	for i := 0; ; i++ {
		quiet()
		at, ok := ledger.WitnessNextDue(w)
		if !ok {
			break
		}
		if i == 100 {
			t.Fatalf("the witness still has rounds due after %d delays (next at %s)", i, at.Sub(clk.Now()))
		}
		clk.Advance(at.Sub(clk.Now()))
	}

	cs.take()
	const steps = 60
	for range steps {
		clk.Advance(time.Second)
		quiet()
	}
	reads := cs.take()
	rounds := 0
	for topic, n := range reads {
		// A sweep's round of a settled topic: its new leaves (none) and
		// its latest checkpoint.
		if n > 2 {
			t.Errorf("%s: %d reads in a simulated minute idle, want at most one sweep round (2 reads)", topic, n)
		}
		rounds++
	}
	// The sweep takes one topic every Sweep/nTopics.
	if most := int(steps*time.Second/(time.Minute/nTopics)) + 1; rounds > most {
		t.Errorf("%d topics read in a simulated minute idle, want at most %d: %v", rounds, most, reads)
	}
	t.Logf("reads in a simulated idle minute, %d topics: %v", nTopics, reads)

	// A commit in one topic: that topic is read Poll later, no other but
	// the one topic the sweep may take meanwhile.
	busy := topics[7]
	appendN(t, st, busy, 5)
	pub[busy].commitSigned(t, st, pkey)
	advanceToCommitRound(t, w, clk)
	poll.Until(t, 10*time.Second, "the commit witnessed", func() error { return settled(w, []string{busy}, 5) })
	quiet()
	reads = cs.take()
	if reads[busy] == 0 {
		t.Errorf("the committed topic was not read: %v", reads)
	}
	swept := 0
	for topic, n := range reads {
		if topic != busy && topic != "" {
			swept++
			if n > 2 || swept > 1 {
				t.Errorf("%s read %d times after a commit in %s (more than one sweep round)", topic, n, busy)
			}
		}
	}
	others := append(append([]string(nil), topics[:7]...), topics[8:]...)
	if err := settled(w, others, 3); err != nil {
		t.Fatalf("another topic changed: %v", err)
	}
}

// TestCheckpointStoredAloneWitnessedAtOnce: a checkpoint the holder stores
// on its own, after the commit's round already found none, is checked and
// cosigned on its signal, with no timer firing (the clock stands still):
// before, it waited for a follow-up round, or, were the holder slower than
// the last one, for the sweep (a minute; TestLedger/redis timed out so).
func TestCheckpointStoredAloneWitnessedAtOnce(t *testing.T) {
	mt := newManyTopics(t, "alone", 1)
	st, pkey, topic, pub := mt.st, mt.pkey, mt.topics[0], mt.pub[mt.topics[0]]
	clk := clocktest.New(time.Unix(1800000000, 0))
	dir := filepath.Join(t.TempDir(), "w")
	w, err := ledger.NewWitness(ledger.WitnessConfig{Store: mt.m.Handle(), Key: mt.wkey, Copies: copiesIn(t, dir), Dir: dir,
		Poll: time.Second, CosignEvery: time.Second, Sweep: time.Hour, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	w.Start(context.Background())
	defer w.Close()
	if err := w.Follow(topic); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the catch-up", func() error { return settled(w, []string{topic}, 3) })

	// The status says settled before the catch-up round ends: its backlog
	// empties once it has.
	poll.True(t, 10*time.Second, "no backlog once caught up", func() bool {
		now, later := w.Backlog()
		return now == 0 && later == 0
	})
	appendN(t, st, topic, 5)
	cp := pub.commitUnsigned(t, st, pkey)
	// The commit schedules a round Poll later: a backlog for later, none
	// now, the clock standing still.
	poll.True(t, 10*time.Second, "the commit's round in the backlog", func() bool {
		now, later := w.Backlog()
		return now == 0 && later == 1
	})
	// The commit's round, Poll later: it mirrors the new leaves and finds
	// no checkpoint of them.
	advanceToCommitRound(t, w, clk)
	poll.True(t, 10*time.Second, "the new leaves mirrored", func() bool {
		s := w.Status(topic)
		return s != nil && s.Size == 5 && ledger.WitnessIdle(w)
	})
	if s := w.Status(topic); s.CheckpointSize != 3 {
		t.Fatalf("the witness accepted a checkpoint of %d before any was stored", s.CheckpointSize)
	}
	if err := st.AddCheckpoint(context.Background(), cp); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the checkpoint stored alone checked and cosigned, the clock standing still", func() error {
		if c, err := st.Checkpoint(context.Background(), topic); err != nil || c.Size != 5 || len(c.Cosignatures) != 1 {
			return fmt.Errorf("stored checkpoint of %d with %d cosignatures (%v); witness %+v", c.Size, len(c.Cosignatures), err, w.Status(topic))
		}
		return nil
	})
	// Cosigned; its follow-up (and a save waiting for CosignEvery) run as
	// the clock moves to them: then settled, nothing owed now or later.
	poll.True(t, 10*time.Second, "the backlog empty once the topic settled", func() bool {
		now, later := w.Backlog()
		if now == 0 && later > 0 {
			if at, ok := ledger.WitnessNextDue(w); ok && ledger.WitnessIdle(w) {
				clk.Advance(at.Sub(clk.Now()))
			}
		}
		return now == 0 && later == 0
	})
}

// advanceToCommitRound waits until the round a commit schedules (about
// Poll later, Poll being a second here) is due, and moves clk to it.
func advanceToCommitRound(t *testing.T, w *ledger.Witness, clk *clocktest.Clock) {
	t.Helper()
	var at time.Time
	poll.True(t, 10*time.Second, "a round of the commit's topic due", func() bool {
		var ok bool
		at, ok = ledger.WitnessNextDue(w)
		return ok && at.Sub(clk.Now()) <= 2*time.Second
	})
	clk.Advance(at.Sub(clk.Now()))
}
