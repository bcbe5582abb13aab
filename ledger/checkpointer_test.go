package ledger_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/clocktest"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/ledger"
)

// awayStore is a store that cannot be reached for its first reads of the
// cursor and of leaves, as at a takeover during a store failover.
type awayStore struct {
	baton.Store
	cursorFails, leafFails atomic.Int32
}

func (s *awayStore) Cursor(ctx context.Context, topic string) (baton.Cursor, error) {
	if s.cursorFails.Add(-1) >= 0 {
		return baton.Cursor{}, fmt.Errorf("read cursor: %w", baton.ErrUnavailable)
	}
	return s.Store.Cursor(ctx, topic)
}

func (s *awayStore) Leaves(ctx context.Context, topic string, after uint64, limit int) ([]baton.Leaf, error) {
	if s.leafFails.Add(-1) >= 0 {
		return nil, fmt.Errorf("read leaves: %w", baton.ErrUnavailable)
	}
	return s.Store.Leaves(ctx, topic, after, limit)
}

// TestCheckpointerRidesOutAnUnreachableStore: failed reads of the store,
// at start and while catching up, are tried again; the checkpointer goes
// on and signs the whole log instead of stopping (which would cost the
// lease).
func TestCheckpointerRidesOutAnUnreachableStore(t *testing.T) {
	ctx := context.Background()
	m := memstore.New(nil)
	st := &awayStore{Store: m.Handle()}
	const topic = "away"
	appendN(t, st, topic, 30)
	key, _ := ledger.GenerateKey("node-a")
	l := acquire(t, st, topic, "node-a")
	publish(t, st, l)
	st.cursorFails.Store(2)
	st.leafFails.Store(2)
	cp, err := ledger.NewCheckpointer(ledger.CheckpointerConfig{Store: st, Lease: l, Key: key, Every: 10, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cp.Start(ctx)
	defer cp.Close()
	checkFor(t, "a checkpoint of 30", 10*time.Second, func() bool { return cp.Signed() == 30 })

	// Leaves the checkpointer was not handed (its queue overflowed, say)
	// are read from the store, which is away again for a while.
	appendN(t, st, topic, 45) // m30..m44 are new
	more := publish(t, st, l)
	st.leafFails.Store(3)
	cp.Committed(more[10:], nil)
	checkFor(t, "a checkpoint of 45", 10*time.Second, func() bool { return cp.Signed() == 45 })
	select {
	case <-cp.Done():
		t.Fatalf("checkpointer stopped: %v", cp.Err())
	default:
	}
	if got, err := st.Checkpoint(ctx, topic); err != nil || got.Size != 45 {
		t.Fatalf("latest stored checkpoint: %d %v", got.Size, err)
	}
}

// TestIdleCheckpointerArmsNoTimer: once its checkpoint covers the cursor,
// the checkpointer of an idle topic arms no timer (no wake-up, no read);
// a new commit arms it again, and it signs and stores that too.
func TestIdleCheckpointerArmsNoTimer(t *testing.T) {
	ctx := context.Background()
	m := memstore.New(nil)
	st := newCountingStore(m.Handle())
	const topic = "quiet"
	appendN(t, m.Handle(), topic, 30)
	key, _ := ledger.GenerateKey("node-a")
	l := acquire(t, m.Handle(), topic, "node-a")
	publish(t, m.Handle(), l)
	clk := clocktest.New(time.Unix(1800000000, 0))
	cp, err := ledger.NewCheckpointer(ledger.CheckpointerConfig{Store: st, Lease: l, Key: key, Every: 1000, Interval: time.Second, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	cp.Start(ctx)
	defer cp.Close()
	// advance moves the clock once the checkpointer armed a timer.
	advance := func(d time.Duration) {
		t.Helper()
		poll.True(t, 10*time.Second, "a timer armed", func() bool { return clk.Timers() > 0 })
		clk.Advance(d)
	}
	for _, size := range []uint64{30, 45} {
		if size == 45 {
			appendN(t, m.Handle(), topic, 45)
			cp.Committed(publish(t, m.Handle(), l), nil)
		}
		advance(time.Second)            // sign
		advance(100 * time.Millisecond) // no commit took it: store it
		poll.True(t, 10*time.Second, fmt.Sprintf("checkpoint %d stored", size), func() bool { return cp.Signed() == size })
		poll.True(t, 10*time.Second, "no timer armed when idle", func() bool { return clk.Timers() == 0 })
		st.take()
		clk.Advance(time.Minute)
		if reads := st.take(); len(reads) != 0 {
			t.Fatalf("an idle checkpointer read the store: %v", reads)
		}
	}
	if got, err := st.Checkpoint(ctx, topic); err != nil || got.Size != 45 {
		t.Fatalf("latest stored checkpoint: %d %v", got.Size, err)
	}
}
