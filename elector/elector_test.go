package elector_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/elector"
	"github.com/baton-pub/baton/internal/clocktest"
	"github.com/baton-pub/baton/internal/memstore"
	"github.com/baton-pub/baton/internal/poll"
	"github.com/baton-pub/baton/publisher"
)

const ttl = 2 * time.Second

// flaky wraps a store and, while cut, fails every call a node makes to
// keep or take leases (a node cut off from the store, or paused).
type flaky struct {
	elector.Store
	cut atomic.Bool
}

func (f *flaky) AcquireNode(ctx context.Context, node string, d time.Duration) (baton.NodeLease, error) {
	if f.cut.Load() {
		return baton.NodeLease{}, baton.ErrUnavailable
	}
	return f.Store.AcquireNode(ctx, node, d)
}

func (f *flaky) RenewNode(ctx context.Context, nl baton.NodeLease, d time.Duration) (baton.NodeLease, error) {
	if f.cut.Load() {
		return baton.NodeLease{}, baton.ErrUnavailable
	}
	return f.Store.RenewNode(ctx, nl, d)
}

func (f *flaky) Acquire(ctx context.Context, topic string, nl baton.NodeLease) (baton.Lease, error) {
	if f.cut.Load() {
		return baton.Lease{}, baton.ErrUnavailable
	}
	return f.Store.Acquire(ctx, topic, nl)
}

func (f *flaky) NodeLeases(ctx context.Context) ([]baton.NodeLease, error) {
	if f.cut.Load() {
		return nil, baton.ErrUnavailable
	}
	return f.Store.NodeLeases(ctx)
}

// session starts a node's session on st.
func session(t *testing.T, st elector.Store, clock baton.Clock, node string, ttl time.Duration) *elector.Session {
	t.Helper()
	s, err := elector.NewSession(elector.SessionConfig{Store: st, Node: node, TTL: ttl, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runRec records what the runner was given, when it was stopped and the
// elector's role changes.
type runRec struct {
	mu      sync.Mutex
	leases  []baton.Lease
	stopped int
	changes []elector.Change
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

// changed reports whether the elector has made a change for reason.
func (r *runRec) changed(reason string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.changes {
		if c.Reason == reason {
			return true
		}
	}
	return false
}

func start(t *testing.T, st elector.Store, clock baton.Clock, s *elector.Session, topic string) (*elector.Elector, *runRec) {
	t.Helper()
	rec := &runRec{fail: make(chan error, 1)}
	return startRunner(t, st, clock, s, topic, rec, rec.run), rec
}

// startRunner starts an elector that runs run and tells rec of its role
// changes.
func startRunner(t *testing.T, st elector.Store, clock baton.Clock, s *elector.Session, topic string, rec *runRec, run elector.Runner) *elector.Elector {
	t.Helper()
	onChange := func(c elector.Change) { rec.mu.Lock(); rec.changes = append(rec.changes, c); rec.mu.Unlock() }
	e, err := elector.New(elector.Config{Store: st, Session: s, Topic: topic, Clock: clock, Run: run, OnChange: onChange})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// eventually polls cond, advancing the fake clock by step after each miss
// (0 to leave it), until cond holds or 10 real seconds pass.
func eventually(t *testing.T, clock *clocktest.Clock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.True(t, 10*time.Second, what, func() bool {
		if cond() {
			return true
		}
		if step > 0 {
			clock.Advance(step)
		}
		return false
	})
}

func role(e *elector.Elector) baton.Role { r, _ := e.Role(); return r }

func newClock() *clocktest.Clock { return clocktest.New(time.Unix(1_700_000_000, 0)) }

func TestAcquireAndRenew(t *testing.T) {
	clock := newClock()
	st := memstore.New(clock)
	e, rec := start(t, st, clock, session(t, st, clock, "a", ttl), "t")
	eventually(t, clock, 0, "a active", func() bool { return role(e) == baton.RoleActive })
	if _, l := e.Role(); l.Epoch != 1 || l.Holder != "a" {
		t.Fatalf("lease = %+v", l)
	}
	// The node lease's renewals keep the topic's lease alive far past one TTL.
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

// TestFailClosed: a node that cannot renew its node lease stops the runners
// of all its topics before the lease can lapse in the store, and a standby
// takes every topic over after the TTL: one node lease ended, one record per
// topic.
func TestFailClosed(t *testing.T) {
	clock := newClock()
	st := memstore.New(clock)
	fa := &flaky{Store: st}
	sa := session(t, fa, clock, "a", ttl)
	sb := session(t, st, clock, "b", ttl)
	topics := []string{"t1", "t2", "t3"}
	var as, bs []*elector.Elector
	var recsA []*runRec
	for _, topic := range topics {
		a, rec := start(t, fa, clock, sa, topic)
		eventually(t, clock, 0, "a active on "+topic, func() bool { return role(a) == baton.RoleActive })
		as, recsA = append(as, a), append(recsA, rec)
	}
	for _, topic := range topics {
		b, _ := start(t, st, clock, sb, topic)
		bs = append(bs, b)
	}
	fa.cut.Store(true)
	lock, _ := st.Lock(context.Background(), "t1")
	// Step time until a steps down; it must do so while the store still
	// holds its lease (fail closed), that is, before the lease's expiry.
	eventually(t, clock, 10*time.Millisecond, "a steps down", func() bool {
		for _, r := range recsA {
			if r.stops() != 1 {
				return false
			}
		}
		return true
	})
	if now := clock.Now(); !now.Before(lock.Lease.ExpiresAt) {
		t.Fatalf("a stopped at %v, not before its lease expired at %v", now, lock.Lease.ExpiresAt)
	}
	for i, b := range bs {
		eventually(t, clock, 10*time.Millisecond, "b active on "+topics[i], func() bool { return role(b) == baton.RoleActive })
		if _, l := b.Role(); l.Epoch != 2 {
			t.Fatalf("b epoch on %s = %d, want 2", topics[i], l.Epoch)
		}
		hs, _ := st.Handovers(context.Background(), topics[i], 10)
		if len(hs) != 1 || hs[0].Reason != baton.ReasonExpired || hs[0].Holder != "a" || hs[0].Successor != "b" {
			t.Fatalf("handovers of %s = %+v", topics[i], hs)
		}
		if !hs[0].At.Equal(lock.Lease.ExpiresAt) {
			t.Fatalf("record of %s ended at %v, want the node lease's expiry %v", topics[i], hs[0].At, lock.Lease.ExpiresAt)
		}
	}
	for _, a := range as {
		if role(a) != baton.RoleStandby {
			t.Fatalf("a is %v on a topic b took", role(a))
		}
	}
}

// TestGracefulHandover: Close releases at once and the standby acquires
// without the clock moving: it is told, it does not wait for a timeout.
func TestGracefulHandover(t *testing.T) {
	clock := newClock()
	st := memstore.New(clock)
	a, recA := start(t, st, clock, session(t, st, clock, "a", ttl), "t")
	eventually(t, clock, 0, "a active", func() bool { return role(a) == baton.RoleActive })
	b, _ := start(t, st, clock, session(t, st, clock, "b", ttl), "t")
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

// TestNodeLeavesAtOnce: a node that leaves (Leaving, its electors closed,
// then its session) releases every topic in one step: one record per
// topic, all at one instant, and the standby takes them all without the
// clock moving.
func TestNodeLeavesAtOnce(t *testing.T) {
	clock := newClock()
	st := memstore.New(clock)
	sa := session(t, st, clock, "a", ttl)
	sb := session(t, st, clock, "b", ttl)
	var as, bs []*elector.Elector
	for i := range 5 {
		topic := fmt.Sprintf("t%d", i)
		a, _ := start(t, st, clock, sa, topic)
		eventually(t, clock, 0, "a active on "+topic, func() bool { return role(a) == baton.RoleActive })
		b, _ := start(t, st, clock, sb, topic)
		as, bs = append(as, a), append(bs, b)
	}
	sa.Leaving()
	for _, a := range as {
		a.Close()
	}
	for i := range as {
		if hs, _ := st.Handovers(context.Background(), fmt.Sprintf("t%d", i), 10); len(hs) != 0 {
			t.Fatalf("an elector released its own lease while its node was leaving: %+v", hs)
		}
	}
	sa.Close()
	var at time.Time
	for i, b := range bs {
		topic := fmt.Sprintf("t%d", i)
		eventually(t, clock, 0, "b active on "+topic+" without time passing", func() bool { return role(b) == baton.RoleActive })
		hs, _ := st.Handovers(context.Background(), topic, 10)
		if len(hs) != 1 || hs[0].Reason != baton.ReasonReleased || hs[0].Holder != "a" || hs[0].Successor != "b" {
			t.Fatalf("handovers of %s = %+v", topic, hs)
		}
		if i == 0 {
			at = hs[0].At
		} else if !hs[0].At.Equal(at) {
			t.Fatalf("records at %v and %v: not one step", at, hs[0].At)
		}
	}
}

// TestRunnerFails: a failing runner releases the lease as failed; a
// fenced runner steps down without releasing.
func TestRunnerFails(t *testing.T) {
	clock := newClock()
	st := memstore.New(clock)
	a, recA := start(t, st, clock, session(t, st, clock, "a", ttl), "t")
	eventually(t, clock, 0, "a active", func() bool { return role(a) == baton.RoleActive })
	b, recB := start(t, st, clock, session(t, st, clock, "b", ttl), "t")
	recA.fail <- errors.New("disk on fire")
	eventually(t, clock, 0, "b active", func() bool { return role(b) == baton.RoleActive })
	hs, _ := st.Handovers(context.Background(), "t", 10)
	if len(hs) != 1 || hs[0].Reason != baton.ReasonFailed || hs[0].Holder != "a" {
		t.Fatalf("handovers = %+v", hs)
	}
	// b's runner reports it was fenced: b steps down without a release, so
	// the lease stays b's in the store (a release would hand a topic to a
	// standby while the fencing holder may still write).
	recB.fail <- fmt.Errorf("commit: %w", baton.ErrFenced)
	eventually(t, clock, 0, "b fenced", func() bool { return recB.changed("fenced") })
	if hs, _ = st.Handovers(context.Background(), "t", 10); len(hs) != 1 {
		t.Fatalf("fenced step-down wrote a release record: %+v", hs)
	}
	lock, _ := st.Lock(context.Background(), "t")
	if !lock.Held || lock.Lease.Epoch != 2 || lock.Lease.Holder != "b" {
		t.Fatalf("after a fenced step-down the lock is %+v, want b's epoch 2 still held", lock)
	}
}

// TestZombie: a node paused (a SIGSTOP, a GC pause) past its node lease
// wakes to find the topic taken. Its session has withdrawn trust while it
// slept; the publisher, which goes on to commit before it looks at its
// context (as a write already under way would), is refused by the store,
// so the zombie commits nothing; and it steps down without touching the
// successor's lease.
func TestZombie(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	st := memstore.New(clock)
	u, err := baton.Normalize(baton.Update{ID: "k", Value: json.RawMessage(`1`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, "t", []baton.Update{u}); err != nil {
		t.Fatal(err)
	}
	fa := &flaky{Store: st}
	wake := make(chan struct{})
	var runCtx atomic.Pointer[context.Context]
	published := make(chan error, 1)
	rec := &runRec{}
	a := startRunner(t, fa, clock, session(t, fa, clock, "a", ttl), "t", rec, func(ctx context.Context, l baton.Lease) error {
		runCtx.Store(&ctx)
		<-wake
		// Not ctx: the zombie acts before it notices. A commit that went
		// through ends the run so that the test can report it.
		pctx, stop := context.WithCancel(context.Background())
		defer stop()
		err := publisher.Run(pctx, st, l, publisher.Options{Clock: clock, OnCommit: func(baton.Cursor, int) { stop() }})
		published <- err
		return err
	})
	var woken sync.Once
	t.Cleanup(func() { woken.Do(func() { close(wake) }) }) // before a's Close, which waits for the runner
	eventually(t, clock, 0, "a running", func() bool { return runCtx.Load() != nil })
	_, la := a.Role()
	// a sleeps (makes no call) past its node lease; b takes the topic.
	fa.cut.Store(true)
	clock.Advance(ttl + time.Millisecond)
	nb, err := st.AcquireNode(ctx, "b", ttl)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := st.Acquire(ctx, "t", nb)
	if err != nil {
		t.Fatalf("b acquires a's lapsed lease: %v", err)
	}
	if lb.Epoch != la.Epoch+1 {
		t.Fatalf("epochs %d then %d", la.Epoch, lb.Epoch)
	}
	eventually(t, clock, 0, "a's session to withdraw its runner's trust", func() bool { return (*runCtx.Load()).Err() != nil })
	fa.cut.Store(false)
	woken.Do(func() { close(wake) })
	if err := <-published; !errors.Is(err, baton.ErrFenced) {
		t.Fatalf("the zombie's publisher: %v, want %v", err, baton.ErrFenced)
	}
	eventually(t, clock, 0, "a steps down", func() bool { return role(a) == baton.RoleStandby })
	if cur, err := st.Cursor(ctx, "t"); err != nil || cur.Seq != 0 {
		t.Fatalf("cursor %+v, %v: the zombie committed", cur, err)
	}
	lock, _ := st.Lock(ctx, "t")
	if !lock.Held || lock.Lease.Holder != "b" || lock.Lease.Epoch != lb.Epoch {
		t.Fatalf("the successor's lease is %+v, want %+v", lock.Lease, lb)
	}
	hs, _ := st.Handovers(ctx, "t", 10)
	if len(hs) != 1 || hs[0].Epoch != la.Epoch || hs[0].Reason != baton.ReasonExpired {
		t.Fatalf("release records %+v, want one: a's lease expired", hs)
	}
}

// lostReply grants an Acquire in the store but reports it as unavailable,
// as a Redis master does when no replica acknowledged the write in time.
type lostReply struct {
	elector.Store
	lose atomic.Bool
}

func (l *lostReply) Acquire(ctx context.Context, topic string, nl baton.NodeLease) (baton.Lease, error) {
	lease, err := l.Store.Acquire(ctx, topic, nl)
	if err == nil && l.lose.Load() {
		return baton.Lease{}, baton.ErrUnavailable
	}
	return lease, err
}

// TestAdoptUnconfirmedLease: an Acquire whose reply was lost left the lease
// in the store under this node's lease; the elector adopts it instead of
// burning the epoch and waiting a TTL for it to lapse.
func TestAdoptUnconfirmedLease(t *testing.T) {
	clock := newClock()
	st := memstore.New(clock)
	lr := &lostReply{Store: st}
	lr.lose.Store(true)
	a, rec := start(t, lr, clock, session(t, lr, clock, "a", ttl), "t")
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

// TestStandbysPark: standbys of topics held elsewhere hold no goroutine,
// and each still takes its topic over when the holder's node leaves.
func TestStandbysPark(t *testing.T) {
	clock := newClock()
	st := memstore.New(clock)
	sa := session(t, st, clock, "a", ttl)
	sb := session(t, st, clock, "b", ttl)
	const topics = 200
	var bs []*elector.Elector
	for i := range topics {
		a, _ := start(t, st, clock, sa, fmt.Sprintf("t%d", i))
		eventually(t, clock, 0, "a active", func() bool { return role(a) == baton.RoleActive })
	}
	base := runtime.NumGoroutine()
	for i := range topics {
		b, _ := start(t, st, clock, sb, fmt.Sprintf("t%d", i))
		bs = append(bs, b)
	}
	poll.True(t, 10*time.Second, "the standbys to park", func() bool { return runtime.NumGoroutine() <= base+topics/10 })
	sa.Leaving()
	sa.Close() // one release for every topic, one lock signal each
	for i, b := range bs {
		eventually(t, clock, 0, fmt.Sprintf("b active on t%d", i), func() bool { return role(b) == baton.RoleActive })
	}
}

// TestActiveNoticesLostLock: an active elector whose lock is ended under it
// (here by the topic's deletion, which fences its lease) stops its idle
// runner after the lock signal, without a write of its own.
func TestActiveNoticesLostLock(t *testing.T) {
	clock := newClock()
	st := memstore.New(clock)
	a, rec := start(t, st, clock, session(t, st, clock, "a", ttl), "t")
	eventually(t, clock, 5*time.Millisecond, "a active", func() bool { return role(a) == baton.RoleActive && rec.runs() == 1 })
	if _, err := st.DeleteTopic(context.Background(), "t", baton.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, clock, 50*time.Millisecond, "a stepped down, lost", func() bool { return rec.changed("lost") && rec.stops() == 1 })
}

// deaf wraps a store whose notifications stop while muted (a Redis pub/sub
// connection gone silent): subscriptions made then or before hear nothing.
type deaf struct {
	elector.Store
	muted atomic.Bool
}

type deafSub struct{ inner baton.Subscription }

func (d deafSub) C() <-chan struct{} { return nil }
func (d deafSub) Close()             { d.inner.Close() }

func (d *deaf) Subscribe(topic string, signals baton.Signal) baton.Subscription {
	return deafSub{d.Store.Subscribe(topic, signals)}
}

func (d *deaf) SubscribeFunc(topic string, signals baton.Signal, fn func(baton.Signal)) baton.Subscription {
	return d.Store.SubscribeFunc(topic, signals, func(s baton.Signal) {
		if !d.muted.Load() {
			fn(s)
		}
	})
}

// wakingSession starts node's session on st, its watcher's findings
// (OnEnded) passed to the elector stored in the pointer it returns, as
// node.Node does for all its electors.
func wakingSession(t *testing.T, st elector.Store, clock baton.Clock, node string) (*elector.Session, *atomic.Pointer[elector.Elector]) {
	t.Helper()
	var e atomic.Pointer[elector.Elector]
	s, err := elector.NewSession(elector.SessionConfig{Store: st, Node: node, TTL: ttl, Clock: clock,
		OnEnded: func(ended string) {
			if el := e.Load(); el != nil {
				el.HolderEnded(ended)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &e
}

// TestParkedWokenByWatcher: a standby parked behind a node that crashes,
// or leaves, takes the topic once its session's watcher finds the node
// lease lapsed or gone (OnEnded, Elector.HolderEnded), even though no store
// signal of the release ever reaches it (docs/reliability.md, "A crash
// hand-over without notifications").
func TestParkedWokenByWatcher(t *testing.T) {
	for _, how := range []string{"crash", "leave"} {
		t.Run(how, func(t *testing.T) { parkedWokenByWatcher(t, how == "crash") })
	}
}

func parkedWokenByWatcher(t *testing.T, crash bool) {
	clock := newClock()
	st := memstore.New(clock)
	fa := &flaky{Store: st}
	sa := session(t, fa, clock, "a", ttl)
	a, _ := start(t, fa, clock, sa, "t")
	eventually(t, clock, 0, "a active", func() bool { return role(a) == baton.RoleActive })

	d := &deaf{Store: st}
	sb, b := wakingSession(t, d, clock, "b")
	eb, _ := start(t, d, clock, sb, "t")
	b.Store(eb)
	poll.True(t, 10*time.Second, "b's standby to park", eb.IsParked)

	d.muted.Store(true) // from here b's node hears no signal of the store
	if crash {
		fa.cut.Store(true) // a can no longer renew: its node lease lapses
	} else {
		sa.Leaving()
		a.Close()
		sa.Close() // every lease of a released in one step
	}
	eventually(t, clock, ttl/10, "b active after a's node lease lapsed", func() bool { return role(eb) == baton.RoleActive })
	if _, l := eb.Role(); l.Holder != "b" {
		t.Fatalf("b's lease is held by %q", l.Holder)
	}
}

// named is a store whose lock messages name the holder (as Redis's do,
// baton.RecentLock): the test says what was heard. It counts lock reads.
type named struct {
	elector.Store
	mu     sync.Mutex
	holder string
	epoch  uint64
	heard  bool
	reads  atomic.Int64
}

func (s *named) Lock(ctx context.Context, topic string) (baton.LockState, error) {
	s.reads.Add(1)

	return s.Store.Lock(ctx, topic)
}

func (s *named) RecentLock(string) (string, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holder, s.epoch, s.heard
}

func (s *named) hear(holder string, epoch uint64, heard bool) {
	s.mu.Lock()
	s.holder, s.epoch, s.heard = holder, epoch, heard
	s.mu.Unlock()
}

// TestParkBehindNamedHolder: a standby whose delay before racing ends after
// another node took the lock, as the store heard, parks behind that node
// without reading the lock; and takes the topic when that node crashes. A
// holder whose last lock change heard is its own acquisition does not read
// the lock back.
func TestParkBehindNamedHolder(t *testing.T) {
	for _, heard := range []bool{true, false} {
		t.Run(fmt.Sprint("heard=", heard), func(t *testing.T) { parkBehindNamedHolder(t, heard) })
	}
}

func parkBehindNamedHolder(t *testing.T, heard bool) {
	clock := newClock()
	st := memstore.New(clock)
	fa := &flaky{Store: st}
	sa := session(t, fa, clock, "a", ttl)
	ns := &named{Store: st}
	sb, b := wakingSession(t, ns, clock, "b")

	delayed := make(chan struct{}, 1)
	rec := &runRec{fail: make(chan error, 1)}
	eb, err := elector.New(elector.Config{Store: ns, Session: sb, Topic: "t", Clock: clock, Run: rec.run,
		OnChange: func(c elector.Change) { rec.mu.Lock(); rec.changes = append(rec.changes, c); rec.mu.Unlock() },
		Delay: func(string) time.Duration {
			select {
			case delayed <- struct{}{}:
			default:
			}
			return 10 * time.Millisecond
		}})
	if err != nil {
		t.Fatal(err)
	}
	b.Store(eb)
	if err := eb.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eb.Close() })
	<-delayed // b read the lock free and waits its delay
	nla, _, _ := sa.Current()
	la, err := st.Acquire(context.Background(), "t", nla) // a takes it meanwhile
	if err != nil {
		t.Fatal(err)
	}
	ns.hear("a", la.Epoch, heard)
	reads := ns.reads.Load()
	eventually(t, clock, time.Millisecond, "b parked", eb.IsParked)
	want := reads
	if !heard {
		want++ // nothing heard: b reads the lock, finds a
	}
	if got := ns.reads.Load(); got != want {
		t.Fatalf("b read the lock %d times after its delay, want %d", got-reads, want-reads)
	}

	fa.cut.Store(true) // a crashes: b's watcher wakes it (OnEnded)
	eventually(t, clock, ttl/10, "b active after a crashed", func() bool { return role(eb) == baton.RoleActive })
	_, lb := eb.Role()
	ns.hear("b", lb.Epoch, heard) // b's own acquisition, heard
	reads, checks := ns.reads.Load(), eb.Checks()
	// The holder checks its lock a TTL after a lock signal (its own
	// acquisition's, here): wait for that check.
	eventually(t, clock, ttl/10, "b's check of its lock", func() bool { return eb.Checks() > checks })
	if got := ns.reads.Load(); !heard && got == reads {
		t.Fatal("nothing heard: b's check did not read the lock")
	}
	if got := ns.reads.Load(); heard && got != reads {
		rec.mu.Lock()
		t.Logf("changes: %+v", rec.changes)
		rec.mu.Unlock()
		t.Fatalf("b read its own lock back %d times, though its acquisition was the last change heard", got-reads)
	}
	if role(eb) != baton.RoleActive {
		t.Fatal("b stepped down")
	}
}

// staleCopy is a store that, once stale is set, keeps showing topic's lock
// held under that lease, and refuses to let it be taken, until the clock
// passes until: a copy of the holder's ended node lease that the end did
// not reach (Redis Cluster, an unreachable bucket), which lapses with no
// signal at all.
type staleCopy struct {
	elector.Store
	clock baton.Clock
	mu    sync.Mutex
	lease baton.Lease
	until time.Time
}

func (s *staleCopy) stale(topic string) (baton.Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	left := s.until.Sub(s.clock.Now())
	if s.lease.Topic != topic || left <= 0 {
		return baton.Lease{}, false
	}
	l := s.lease
	l.Remaining = left
	return l, true
}

func (s *staleCopy) Lock(ctx context.Context, topic string) (baton.LockState, error) {
	if l, ok := s.stale(topic); ok {
		return baton.LockState{Topic: topic, Held: true, Lease: l}, nil
	}
	return s.Store.Lock(ctx, topic)
}

func (s *staleCopy) Acquire(ctx context.Context, topic string, nl baton.NodeLease) (baton.Lease, error) {
	if _, ok := s.stale(topic); ok {
		return baton.Lease{}, baton.ErrLeaseHeld
	}
	return s.Store.Acquire(ctx, topic, nl)
}

// TestStandbyWaitsOutAStaleCopy: when a crashed node's lease ended but a
// copy of it still holds the topic's lock (the end of the copy failed), the
// standby woken by the end does not park behind the dead node, where no
// signal would ever reach it: it reads the lock again when the copy lapses,
// and takes the topic (docs/reliability.md, "Redis Cluster: a copy the end
// did not reach").
func TestStandbyWaitsOutAStaleCopy(t *testing.T) {
	clock := newClock()
	st := memstore.New(clock)
	fa := &flaky{Store: st}
	sa := session(t, fa, clock, "a", ttl)
	a, _ := start(t, fa, clock, sa, "t")
	eventually(t, clock, 0, "a active", func() bool { return role(a) == baton.RoleActive })
	_, held := a.Role()

	sc := &staleCopy{Store: st, clock: clock}
	sb, b := wakingSession(t, sc, clock, "b")
	eb, _ := start(t, sc, clock, sb, "t")
	b.Store(eb)
	poll.True(t, 10*time.Second, "b's standby to park", eb.IsParked)

	// a crashes; one copy of its node lease outlives its end by 3 TTLs.
	sc.mu.Lock()
	sc.lease, sc.until = held, clock.Now().Add(4*ttl)
	sc.mu.Unlock()
	fa.cut.Store(true)
	eventually(t, clock, ttl/10, "b active once the stale copy lapsed", func() bool { return role(eb) == baton.RoleActive })
	if _, l := eb.Role(); l.Holder != "b" {
		t.Fatalf("b's lease is held by %q", l.Holder)
	}
	if clock.Now().Before(sc.until) {
		t.Fatalf("b took the topic %v before the stale copy lapsed", sc.until.Sub(clock.Now()))
	}
}
