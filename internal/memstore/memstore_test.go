package memstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/storetest"
)

func open(t *testing.T, s *memstore.Store) *memstore.Store {
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the suite with a fresh store per subtest, and two
// handles onto one store for the Shared subtests.
func TestConformance(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) baton.Store { return open(t, memstore.New(nil)) },
		storetest.WithShared(func(t *testing.T) (a, b baton.Store) {
			s := memstore.New(nil)
			return open(t, s), open(t, s.Handle())
		}),
		storetest.Parallel(),
	)
}

// TestConformanceOneDataSet runs the suite with every subtest on a handle onto
// the same data, as engines whose tests share one Redis database do: the
// suite must not trip over what other subtests wrote.
func TestConformanceOneDataSet(t *testing.T) {
	shared := memstore.New(nil)
	storetest.Run(t,
		func(t *testing.T) baton.Store { return open(t, shared.Handle()) },
		storetest.WithShared(func(t *testing.T) (a, b baton.Store) {
			return open(t, shared.Handle()), open(t, shared.Handle())
		}),
		storetest.Parallel(),
	)
}

// manualClock is a clock that moves only when told.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *manualClock) NewTimer(time.Duration) baton.Timer { panic("memstore does not use timers") }

// TestManualClock: expiry follows the injected clock, not the wall clock,
// so the tests above the store can drive it.
func TestManualClock(t *testing.T) {
	ctx := context.Background()
	clock := &manualClock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := open(t, memstore.New(clock))
	na, err := s.AcquireNode(ctx, "node-a", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Acquire(ctx, "quotes", na)
	if err != nil {
		t.Fatal(err)
	}
	if !l.AcquiredAt.Equal(clock.Now()) || l.ExpiresAt.Sub(l.AcquiredAt) != 10*time.Second {
		t.Fatalf("lease times %v..%v, want from the manual clock", l.AcquiredAt, l.ExpiresAt)
	}
	clock.Advance(9 * time.Second)
	nb, err := s.AcquireNode(ctx, "node-b", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "quotes", nb); !errors.Is(err, baton.ErrLeaseHeld) {
		t.Fatalf("Acquire before expiry: %v, want ErrLeaseHeld", err)
	}
	if st, _ := s.Lock(ctx, "quotes"); st.Lease.Remaining != time.Second {
		t.Fatalf("Remaining = %v, want 1s", st.Lease.Remaining)
	}
	clock.Advance(time.Second)
	rec, err := s.Expire(ctx, "quotes")
	if err != nil {
		t.Fatalf("Expire at ExpiresAt: %v", err)
	}
	if !rec.At.Equal(l.ExpiresAt) || rec.Reason != baton.ReasonExpired {
		t.Fatalf("record %+v, want expired at %v", rec, l.ExpiresAt)
	}
	if err := s.Heartbeat(ctx, baton.Member{Node: "node-a"}, time.Second); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	if ms, _ := s.Members(ctx); len(ms) != 0 {
		t.Fatalf("Members after the ttl: %+v, want none", ms)
	}
}

// TestCanceledContext: a done context fails the call.
func TestCanceledContext(t *testing.T) {
	s := open(t, memstore.New(nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.AcquireNode(ctx, "node-a", time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a canceled context: %v", err)
	}
}
