package ledger_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/leasetest"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/ledger"
)

// lockAwayStore cannot be read for its first reads of a lock and of the
// node keys, as when the store fails over or the node shuts down.
type lockAwayStore struct {
	baton.Store
	fails atomic.Int32
}

func (s *lockAwayStore) Lock(ctx context.Context, topic string) (baton.LockState, error) {
	if s.fails.Add(-1) >= 0 {
		return baton.LockState{}, fmt.Errorf("read lock %s: %w", topic, baton.ErrUnavailable)
	}
	return s.Store.Lock(ctx, topic)
}

func (s *lockAwayStore) NodeKeys(ctx context.Context) ([]baton.NodeKey, error) {
	if s.fails.Add(-1) >= 0 {
		return nil, fmt.Errorf("read node keys: %w", baton.ErrUnavailable)
	}
	return s.Store.NodeKeys(ctx)
}

// TestWitnessNoAlarmWhenStoreAway: a store that cannot be read while a
// checkpoint is checked is no verdict on the checkpoint: no alarm, and the
// checkpoint is cosigned once the store answers.
func TestWitnessNoAlarmWhenStoreAway(t *testing.T) {
	ctx := context.Background()
	m := memstore.New(nil)
	st := m.Handle()
	away := &lockAwayStore{Store: m.Handle()}
	const topic = "away-w"
	wkey, _ := ledger.GenerateKey("node-w")
	w, err := ledger.NewWitness(ledger.WitnessConfig{Store: away, Key: wkey, Copies: copiesIn(t, filepath.Join(t.TempDir(), "w")), Dir: filepath.Join(t.TempDir(), "w"), Poll: 10 * time.Millisecond, CosignEvery: 10 * time.Millisecond})
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
	tr, err := ledger.OpenTree(ledger.NewMemCopies(), topic)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Append(leaves); err != nil {
		t.Fatal(err)
	}
	root, _ := tr.Root(uint64(len(leaves)))
	away.fails.Store(6)
	if err := st.AddCheckpoint(ctx, signAt(t, st, l, pkey, uint64(len(leaves)), root)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, "the witness to cosign once the store answers", 10*time.Second, func() bool {
		cps, _ := st.Checkpoints(ctx, topic, uint64(len(leaves))-1, 1)
		return len(cps) == 1 && len(cps[0].Cosignatures) == 1
	})
	if s := w.Status(topic); s.Alarms != 0 {
		t.Fatalf("%d alarms for a store that could not be read: %q", s.Alarms, s.LastAlarm)
	}
	if away.fails.Load() > 0 {
		t.Fatal("the store was never away: the test proves nothing")
	}
}
