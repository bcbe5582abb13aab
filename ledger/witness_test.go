package ledger_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/leasetest"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/ledger"
)

// signed appends n items to topic, publishes them under a lease of
// "node-p" (its key registered) and starts that lease's checkpointer (a
// checkpoint every 10 leaves), closed when the test ends.
func signed(t *testing.T, st baton.Store, topic string, n int) (baton.Lease, *ledger.Key, *ledger.Checkpointer) {
	t.Helper()
	ctx := context.Background()
	appendN(t, st, topic, n)
	pkey, _ := ledger.GenerateKey("node-p")
	register(t, st, pkey)
	l, err := leasetest.Acquire(ctx, st, topic, "node-p", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	leaves := publish(t, st, l)
	cp, err := ledger.NewCheckpointer(ledger.CheckpointerConfig{Store: st, Lease: l, Key: pkey, Every: 10, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cp.Start(ctx)
	t.Cleanup(func() { cp.Close() })
	cp.Committed(leaves, nil)
	return l, pkey, cp
}

// TestWitnessRebuildsItsCopy: a witness whose copy was damaged while it was
// down (a torn level file) rebuilds it from the store on restart, without
// an alarm, and goes on accepting checkpoints; proofs from it verify.
func TestWitnessRebuildsItsCopy(t *testing.T) {
	ctx := context.Background()
	m := memstore.New(nil)
	st := m.Handle()
	topic := "rebuild"
	l, pkey, cp := signed(t, st, topic, 40)

	dir := filepath.Join(t.TempDir(), "w")
	wkey, _ := ledger.GenerateKey("node-w")
	register(t, st, wkey)
	copies := copiesIn(t, dir)
	start := func() *ledger.Witness {
		w, err := ledger.NewWitness(ledger.WitnessConfig{Store: m.Handle(), Key: wkey, Copies: copies, Dir: dir, Poll: 10 * time.Millisecond, CosignEvery: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		w.Start(ctx)
		if err := w.Follow(topic); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := start()
	checkFor(t, "the witness to accept checkpoint 40", 10*time.Second, func() bool { return w.Status(topic).CheckpointSize == 40 })
	w.Close()

	// Tear the copy behind the node's back: its last two leaves are lost
	// and the first leaf's hash is flipped.
	db, err := sql.Open("sqlite", filepath.Join(dir, "copies.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE copy_leaves SET n = 38 WHERE topic = 'rebuild' AND chunk = 0`,
		`UPDATE copy_nodes SET hashes = substr(hashes, 1, 38 * 32) WHERE topic = 'rebuild' AND level = 0 AND chunk = 0`,
		`UPDATE copy_nodes SET hashes = CAST(zeroblob(32) || substr(hashes, 33) AS BLOB) WHERE topic = 'rebuild' AND level = 0 AND chunk = 0`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	w = start()
	defer w.Close()
	checkFor(t, "the rebuilt copy to catch up", 10*time.Second, func() bool { return w.Status(topic).Size == 40 })
	appendN(t, st, topic, 50) // m40..m49 are new
	more := publish(t, st, l)
	cp.Committed(more, nil)
	checkFor(t, "the witness to accept checkpoint 50", 10*time.Second, func() bool { return w.Status(topic).CheckpointSize == 50 })
	if s := w.Status(topic); s.Alarms != 0 {
		t.Fatalf("alarms after a rebuild: %+v", s)
	}
	pr, err := w.Proof(topic, 1)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := pkey.VerifierKey()
	ks := ledger.NewKeys(nil)
	ks.AddVerifierKey(v)
	if _, err := ledger.VerifyProof(pr, topic, 1, ks); err != nil {
		t.Fatalf("proof from the rebuilt copy: %v", err)
	}
}

// TestWitnessHoldsRounds: while the hold given to HoldRounds blocks (a node
// whose leases are resuming), no round runs: the copy stays empty; once it
// returns, the witness catches up and accepts the checkpoint.
func TestWitnessHoldsRounds(t *testing.T) {
	ctx := context.Background()
	m := memstore.New(nil)
	st := m.Handle()
	topic := "held"
	signed(t, st, topic, 40)

	wkey, _ := ledger.GenerateKey("node-w")
	register(t, st, wkey)
	w, err := ledger.NewWitness(ledger.WitnessConfig{Store: m.Handle(), Key: wkey, Copies: ledger.NewMemCopies(), Dir: t.TempDir(), Poll: 10 * time.Millisecond, CosignEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	var holding atomic.Int32
	w.HoldRounds(func(ctx context.Context) {
		holding.Add(1)
		select {
		case <-open:
		case <-ctx.Done():
		}
	})
	w.Start(ctx)
	defer w.Close()
	if err := w.Follow(topic); err != nil {
		t.Fatal(err)
	}
	checkFor(t, "a worker to wait on the hold", 10*time.Second, func() bool { return holding.Load() > 0 })
	if s := w.Status(topic); s.Size != 0 || s.CheckpointSize != 0 {
		t.Fatalf("a round ran while held: %+v", s)
	}
	close(open)
	checkFor(t, "the witness to accept checkpoint 40 once let go", 10*time.Second, func() bool { return w.Status(topic).CheckpointSize == 40 })
}
