package elector_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/elector"
	"github.com/baton-pub/baton/internal/clocktest"
	"github.com/baton-pub/baton/sqlite"
)

const ttl = 2 * time.Second

// flaky wraps a real store and fails renewals on demand (a cut-off node).
type flaky struct {
	elector.Store
	cut atomic.Bool
}

func (f *flaky) Renew(ctx context.Context, l baton.Lease, d time.Duration) (baton.Lease, error) {
	if f.cut.Load() {
		return baton.Lease{}, baton.ErrUnavailable
	}
	return f.Store.Renew(ctx, l, d)
}

func (f *flaky) Acquire(ctx context.Context, topic, holder string, d time.Duration) (baton.Lease, error) {
	if f.cut.Load() {
		return baton.Lease{}, baton.ErrUnavailable
	}
	return f.Store.Acquire(ctx, topic, holder, d)
}

func newStore(t *testing.T, clock baton.Clock) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "e.db"), sqlite.Options{Clock: clock, Sync: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runRec records what the runner was given and when it was stopped.
type runRec struct {
	mu      sync.Mutex
	leases  []baton.Lease
	stopped int
	fail    chan error
}

func (r *runRec) run(ctx context.Context, l baton.Lease) error {
	r.mu.Lock()
	r.leases = append(r.leases, l)
	r.mu.Unlock()
	select {
	case <-ctx.Done():
		r.mu.Lock()
		r.stopped++
		r.mu.Unlock()
		return nil
	case err := <-r.fail:
		return err
	}
}

func (r *runRec) runs() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.leases) }
func (r *runRec) stops() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

func start(t *testing.T, st elector.Store, clock baton.Clock, node string) (*elector.Elector, *runRec) {
	t.Helper()
	rec := &runRec{fail: make(chan error, 1)}
	e, err := elector.New(elector.Config{Store: st, Topic: "t", Node: node, TTL: ttl, Clock: clock, Run: rec.run})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, rec
}

// eventually polls cond, advancing the fake clock by step each time (0 to
// leave it), until cond holds or 10 real seconds pass.
func eventually(t *testing.T, clock *clocktest.Clock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		if step > 0 {
			clock.Advance(step)
		}
		time.Sleep(time.Millisecond) // yield between polls; the condition is what we wait on
	}
}

func role(e *elector.Elector) baton.Role { r, _ := e.Role(); return r }

func TestAcquireAndRenew(t *testing.T) {
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	st := newStore(t, clock)
	e, rec := start(t, st, clock, "a")
	eventually(t, clock, 0, "a active", func() bool { return role(e) == baton.RoleActive })
	if _, l := e.Role(); l.Epoch != 1 || l.Holder != "a" {
		t.Fatalf("lease = %+v", l)
	}
	// Renewals keep the lease alive far past one TTL.
	for i := 0; i < 20; i++ {
		before, _ := st.Lock(context.Background(), "t")
		eventually(t, clock, 50*time.Millisecond, "renewal", func() bool {
			after, _ := st.Lock(context.Background(), "t")
			return after.Lease.ExpiresAt.After(before.Lease.ExpiresAt)
		})
	}
	lock, _ := st.Lock(context.Background(), "t")
	if !lock.Held || lock.Lease.Epoch != 1 || role(e) != baton.RoleActive || rec.runs() != 1 {
		t.Fatalf("after renewals: lock %+v role %v runs %d", lock, role(e), rec.runs())
	}
}

// TestFailClosed: a holder that cannot renew stops its runner before its
// lease can lapse in the store, and a standby takes over after the TTL.
func TestFailClosed(t *testing.T) {
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	st := newStore(t, clock)
	fa := &flaky{Store: st}
	a, recA := start(t, fa, clock, "a")
	eventually(t, clock, 0, "a active", func() bool { return role(a) == baton.RoleActive })
	b, recB := start(t, st, clock, "b")
	fa.cut.Store(true)
	lock, _ := st.Lock(context.Background(), "t")
	// Step time until a steps down; it must do so while the store still
	// holds its lease (fail closed), that is, before the lease's expiry.
	eventually(t, clock, 10*time.Millisecond, "a steps down", func() bool { return recA.stops() == 1 })
	if now := clock.Now(); !now.Before(lock.Lease.ExpiresAt) {
		t.Fatalf("a stopped at %v, not before its lease expired at %v", now, lock.Lease.ExpiresAt)
	}
	eventually(t, clock, 10*time.Millisecond, "b active", func() bool { return role(b) == baton.RoleActive })
	if _, l := b.Role(); l.Epoch != 2 {
		t.Fatalf("b epoch = %d, want 2", l.Epoch)
	}
	hs, _ := st.Handovers(context.Background(), "t", 10)
	if len(hs) != 1 || hs[0].Reason != baton.ReasonExpired || hs[0].Holder != "a" || hs[0].Successor != "b" {
		t.Fatalf("handovers = %+v", hs)
	}
	// The role is set before the runner's goroutine records its start.
	eventually(t, clock, 0, "b's runner started", func() bool { return recB.runs() == 1 })
}

// TestGracefulHandover: Close releases at once and the standby acquires
// without the clock moving: it is told, it does not wait for a timeout.
func TestGracefulHandover(t *testing.T) {
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	st := newStore(t, clock)
	a, recA := start(t, st, clock, "a")
	eventually(t, clock, 0, "a active", func() bool { return role(a) == baton.RoleActive })
	b, _ := start(t, st, clock, "b")
	// b must be waiting on the lease's expiry timer before a leaves.
	eventually(t, clock, 0, "b armed", func() bool { return clock.Timers() >= 3 })
	a.Close()
	if recA.stops() != 1 {
		t.Fatal("a's runner was not stopped before release")
	}
	eventually(t, clock, 0, "b active without time passing", func() bool { return role(b) == baton.RoleActive })
	hs, _ := st.Handovers(context.Background(), "t", 10)
	if len(hs) != 1 || hs[0].Reason != baton.ReasonReleased || hs[0].Successor != "b" || hs[0].Handover() != 0 {
		t.Fatalf("handovers = %+v", hs)
	}
}

// TestRunnerFails: a failing runner releases the lease as failed; a
// fenced runner steps down without releasing.
func TestRunnerFails(t *testing.T) {
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	st := newStore(t, clock)
	a, recA := start(t, st, clock, "a")
	eventually(t, clock, 0, "a active", func() bool { return role(a) == baton.RoleActive })
	b, recB := start(t, st, clock, "b")
	recA.fail <- errors.New("disk on fire")
	eventually(t, clock, 0, "b active", func() bool { return role(b) == baton.RoleActive })
	hs, _ := st.Handovers(context.Background(), "t", 10)
	if len(hs) != 1 || hs[0].Reason != baton.ReasonFailed || hs[0].Holder != "a" {
		t.Fatalf("handovers = %+v", hs)
	}
	// b's runner reports it was fenced: no release record is written for
	// epoch 2 by b; the lease simply lapses.
	recB.fail <- baton.ErrFenced
	eventually(t, clock, 0, "b standby", func() bool { return role(b) == baton.RoleStandby })
	lock, _ := st.Lock(context.Background(), "t")
	hs, _ = st.Handovers(context.Background(), "t", 10)
	if lock.Lease.Epoch == 2 && lock.Held && len(hs) != 1 {
		t.Fatalf("fenced step-down wrote a record: %+v", hs)
	}
}

// TestZombie: a holder whose clock jumps (a SIGSTOP, a GC pause) finds its
// lease taken and stops without committing anything.
func TestZombie(t *testing.T) {
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	st := newStore(t, clock)
	a, recA := start(t, st, clock, "a")
	eventually(t, clock, 0, "a active", func() bool { return role(a) == baton.RoleActive })
	_, la := a.Role()
	// Someone else takes the topic after a's lease lapsed.
	clock.Advance(ttl + time.Millisecond)
	lb, err := st.Acquire(context.Background(), "t", "b", ttl)
	if err != nil {
		t.Fatal(err)
	}
	// a's runner tries to use its old lease: the store refuses it.
	_, err = st.Renew(context.Background(), la, ttl)
	if !errors.Is(err, baton.ErrLeaseLost) {
		t.Fatalf("zombie renew: %v", err)
	}
	eventually(t, clock, 0, "a steps down", func() bool { return recA.stops() == 1 && role(a) == baton.RoleStandby })
	if lb.Epoch != la.Epoch+1 {
		t.Fatalf("epochs %d then %d", la.Epoch, lb.Epoch)
	}
}

// lostReply grants an Acquire in the store but reports it as unavailable,
// as a Redis master does when no replica acknowledged the write in time.
type lostReply struct {
	elector.Store
	lose atomic.Bool
}

func (l *lostReply) Acquire(ctx context.Context, topic, holder string, d time.Duration) (baton.Lease, error) {
	lease, err := l.Store.Acquire(ctx, topic, holder, d)
	if err == nil && l.lose.Load() {
		return baton.Lease{}, baton.ErrUnavailable
	}
	return lease, err
}

// TestAdoptUnconfirmedLease: an Acquire whose reply was lost left the lease
// in the store; the elector adopts it with Renew instead of burning the
// epoch and waiting a TTL for it to lapse.
func TestAdoptUnconfirmedLease(t *testing.T) {
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	st := newStore(t, clock)
	lr := &lostReply{Store: st}
	lr.lose.Store(true)
	a, rec := start(t, lr, clock, "a")
	eventually(t, clock, 0, "a lost acquire", func() bool {
		l, _ := st.Lock(context.Background(), "t")
		return l.Held
	})
	lr.lose.Store(false)
	eventually(t, clock, 5*time.Millisecond, "a active and running", func() bool {
		return role(a) == baton.RoleActive && rec.runs() >= 1
	})
	_, l := a.Role()
	if l.Epoch != 1 || rec.runs() != 1 {
		t.Fatalf("adopted lease %+v after %d runs, want epoch 1 (no epoch burnt)", l, rec.runs())
	}
	hs, err := st.Handovers(context.Background(), "t", 10)
	if err != nil || len(hs) != 0 {
		t.Fatalf("release records %+v, %v: want none", hs, err)
	}
}
