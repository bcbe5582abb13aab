// Package elector runs the publish locks of one node: a Session keeps the
// node's liveness lease (one renewal for all its topics), and an Elector per
// topic races for the topic's lease when it is free and runs the publisher
// while it holds it.
//
// Elector states: standby -> (acquired) -> active -> (lost, lapsed, failed
// or closed) -> standby. A standby costs nothing while the lease is held
// elsewhere: it wakes on the topic's lock signal (a release, or the end of
// the holder's node lease, which a Session notices), on its session's
// finding that the holder's node lease ended (HolderEnded, with no signal
// needed) and on its own session's changes. While active, the elector
// trusts its lease as long as the session trusts the node lease (see
// Session): past that it stops the
// runner without waiting for the store. The store fences every write anyway
// (the epoch and node-lease check), so the margin protects what the node
// does outside the store.
//
// Goroutines: Start runs one loop goroutine; while active, one runner
// goroutine. A standby waiting for a lock held elsewhere parks: its
// goroutine ends, and the topic's lock signal (a SubscribeFunc callback)
// starts it again, so a node standing by for thousands of topics holds no
// goroutine for them. Close cancels the loop, which stops the runner, waits for it,
// then releases the lease so that a standby takes over at once (unless the
// session is leaving: it then releases every lease of the node in one step).
package elector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
)

// Store is what the elector needs of the store.
type Store interface {
	baton.Locks
	baton.Notifier
}

// Runner is the work done while holding the lease, typically the publisher.
// ctx is cancelled when the lease must no longer be trusted. Returning an
// error wrapping baton.ErrLeaseLost means the store fenced it: the elector
// steps down without releasing. Any other return releases the lease with
// reason failed.
type Runner func(ctx context.Context, lease baton.Lease) error

// Config configures an Elector.
type Config struct {
	Store   Store
	Session *Session
	Topic   string
	// Cooldown is how long an elector whose runner failed waits before it
	// races again, so that another node takes the topic first (default
	// the session's TTL/2).
	Cooldown time.Duration
	// Retry is the longest a standby waits between reads of the lock after
	// the store failed (default the session's TTL).
	Retry  time.Duration
	Clock  baton.Clock
	Logger *slog.Logger
	Run    Runner
	// Eligible reports whether the node has capacity for this lease now.
	// Nil means always. Every Eligible that reports true is followed by
	// one Attempted, with whether the lease was acquired, so that a node
	// may hold a place for the race (and not let two electors take its
	// last one at once).
	Eligible func() bool
	// Attempted ends the race an Eligible opened: acquired and the lease,
	// or not. Nil means nothing to do. It must not block.
	Attempted func(acquired bool, lease baton.Lease)
	// Capacity, if set, returns a channel closed when Eligible may have
	// changed: a standby that was not eligible waits for it.
	Capacity func() <-chan struct{}
	// Delay is waited before racing for a free lease, given the node that
	// held it last ("" if none); nodes that already
	// hold leases return more, so leadership spreads. Nil means none.
	Delay func(last string) time.Duration
	// OnChange is told of every role change. It must not block.
	OnChange func(Change)
}

// Change is a role change of an elector.
type Change struct {
	Topic  string
	Role   baton.Role
	Lease  baton.Lease
	Reason string
}

func (c *Config) validate() error {
	if c.Store == nil {
		return baton.Invalidf("store", "missing")
	}
	if c.Session == nil {
		return baton.Invalidf("session", "missing")
	}
	if err := baton.ValidTopic(c.Topic); err != nil {
		return err
	}
	if c.Run == nil {
		return baton.Invalidf("run", "missing")
	}
	if c.Cooldown <= 0 {
		c.Cooldown = c.Session.cfg.TTL / 2
	}
	if c.Retry <= 0 {
		c.Retry = c.Session.cfg.TTL
	}
	if c.Clock == nil {
		c.Clock = baton.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Eligible == nil {
		c.Eligible = func() bool { return true }
	}
	if c.Attempted == nil {
		c.Attempted = func(bool, baton.Lease) {}
	}
	if c.Capacity == nil {
		c.Capacity = func() <-chan struct{} { return nil }
	}
	if c.Delay == nil {
		c.Delay = func(string) time.Duration { return 0 }
	}
	if c.OnChange == nil {
		c.OnChange = func(Change) {}
	}
	return nil
}

// Elector is the lease state machine of one topic on one node.
type Elector struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	role  baton.Role
	lease baton.Lease

	// handoff asks the active loop to hand the lease over (Handoff).
	handoff chan time.Duration
	// wake holds a pending wake-up of the topic's lock signal (kick).
	wake chan struct{}
	sub  baton.Subscription // the lock signal, calling kick
	wg   sync.WaitGroup     // the goroutine, while there is one

	// Under mu: set by Start and Close.
	ctx     context.Context
	cancel  context.CancelFunc
	started bool
	closed  bool
	// parked: a standby waiting for a lock held elsewhere, with no
	// goroutine; kick starts one. holder is the node that held it then;
	// freed says the kick that started the goroutine came with
	// SignalFreed: that lease ended with its node lease.
	parked bool
	holder string
	freed  bool
	once   sync.Once
	// checks counts the holder's checks of its lock after a signal
	// (active; for tests).
	checks atomic.Int64
}

var _ baton.Service = (*Elector)(nil)

// New checks cfg and returns an elector; Start runs it.
func New(cfg Config) (*Elector, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new elector: %w", err)
	}
	return &Elector{cfg: cfg, log: cfg.Logger.With("topic", cfg.Topic), role: baton.RoleStandby,
		handoff: make(chan time.Duration, 1), wake: make(chan struct{}, 1)}, nil
}

// Start runs the elector until Close (see baton.Service).
func (e *Elector) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return fmt.Errorf("start elector %s: %w", e.cfg.Topic, baton.ErrClosed)
	case e.started:
		return fmt.Errorf("start elector %s: already started", e.cfg.Topic)
	}
	e.started = true
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.sub = e.cfg.Store.SubscribeFunc(e.cfg.Topic, baton.SignalLock|baton.SignalFreed, e.kick)
	e.spawnLocked()
	return nil
}

// Close stops the runner, releases the lease if held, and waits. It is
// idempotent.
func (e *Elector) Close() error {
	e.once.Do(func() {
		e.mu.Lock()
		e.closed = true
		started := e.started
		if started {
			e.cancel()
		}
		e.mu.Unlock()
		if started {
			e.wg.Wait()
			e.sub.Close()
		}
	})
	return nil
}

// spawnLocked starts the elector's goroutine. Callers hold mu.
func (e *Elector) spawnLocked() {
	e.parked = false
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.loop(e.ctx)
	}()
}

// kick is the lock signal: it wakes the goroutine, or starts one for a
// parked standby. It does not block (baton.Notifier.SubscribeFunc).
func (e *Elector) kick(sig baton.Signal) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.parked && !e.closed {
		e.freed = sig&baton.SignalFreed != 0
		e.spawnLocked()
		return
	}
	select {
	case e.wake <- struct{}{}:
	default: // one is pending already
	}
}

// HolderEnded tells a standby that node's lease ended (Session's OnEnded):
// if it is parked behind node, it races now, as a SignalFreed kick makes
// it. Otherwise it does nothing: a standby that is not parked reads the
// lock anyway, and one parked behind another node has nothing to do.
func (e *Elector) HolderEnded(node string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.parked && !e.closed && e.holder == node {
		e.freed = true
		e.spawnLocked()
	}
}

// park lets the goroutine of a standby whose lock is held elsewhere, by
// holder, end: thousands of idle topics then hold no goroutine
// (docs/design.md, node leases). It reports false if a wake-up is already
// pending, or the elector closing: the caller goes on.
func (e *Elector) park(holder string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.wake) > 0 || e.closed {
		return false
	}
	e.parked, e.holder = true, holder
	return true
}

// Parked reports the node that holds the lock, if the elector is a
// standby parked behind it: as of the last read of the lock, or the last
// acquisition's message, and since then no change of the lock was
// signalled (a change wakes the elector: it is no longer parked).
func (e *Elector) Parked() (holder string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.holder, e.parked && !e.closed && e.holder != ""
}

// parkOrWait parks a standby whose lock st says is held elsewhere
// (reporting true), unless the lock is held under a node lease that the
// session knows has ended: a copy of it that the end did not reach (Redis
// Cluster, an unreachable bucket), which lapses with no signal to wake a
// parked standby. Then it sets t to read the lock again once st's lease
// has lapsed, and reports false.
func (e *Elector) parkOrWait(st baton.LockState, t baton.Timer) bool {
	l := st.Lease
	if !e.cfg.Session.Ended(l.Holder, l.NodeEpoch) {
		return e.park(l.Holder)
	}
	e.log.Debug("lock held under an ended node lease: reading it again when it lapses",
		"holder", l.Holder, "node_epoch", l.NodeEpoch, "remaining", l.Remaining)
	t.Reset(max(l.Remaining, 10*time.Millisecond) + time.Millisecond)
	return false
}

// heard is the holder and epoch of the lock as the store last heard of
// them (baton.RecentLock), if it can say.
func (e *Elector) heard() (holder string, epoch uint64, ok bool) {
	if rl, ok := e.cfg.Store.(baton.RecentLock); ok {
		return rl.RecentLock(e.cfg.Topic)
	}
	return "", 0, false
}

// takeFreed reports whether the goroutine was started by SignalFreed (see
// kick), and the holder whose lease then ended, once.
func (e *Elector) takeFreed() (holder string, freed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	freed, e.freed = e.freed, false
	return e.holder, freed
}

// Handoff hands the lease over gracefully if the elector holds it: it
// stops the runner, releases the lease (a standby takes it at once) and
// does not race for the topic again before cooldown has passed, so that a
// less loaded node takes it. It reports whether a hand-off was asked of an
// active elector; it does not wait for it.
func (e *Elector) Handoff(cooldown time.Duration) bool {
	if r, _ := e.Role(); r != baton.RoleActive {
		return false
	}
	select {
	case e.handoff <- cooldown:
	default: // one is pending already
	}
	return true
}

// Role reports the elector's role and, when active, its lease.
func (e *Elector) Role() (baton.Role, baton.Lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.role, e.lease
}

func (e *Elector) setRole(role baton.Role, lease baton.Lease, reason string) {
	e.mu.Lock()
	e.role, e.lease = role, lease
	e.mu.Unlock()
	e.cfg.OnChange(Change{Topic: e.cfg.Topic, Role: role, Lease: lease, Reason: reason})
}

// loop runs the elector: standby, then active while it holds the lease,
// and so on, until ctx ends or a standby parks.
func (e *Elector) loop(ctx context.Context) {
	var cooldown time.Duration
	for {
		lease, trust, ok := e.standby(ctx, cooldown)
		if !ok {
			return
		}
		cooldown = e.active(ctx, lease, trust)
	}
}

// standby waits for the lease to be free and races for it. It returns the
// lease and the context of the node lease's trust, or false when ctx ended
// or it parked (the lock held elsewhere: kick goes on).
func (e *Elector) standby(ctx context.Context, cooldown time.Duration) (baton.Lease, context.Context, bool) {
	c := e.cfg
	t := c.Clock.NewTimer(cooldown)
	defer t.Stop()
	if cooldown > 0 {
		// After failing, let another node take the topic first.
		select {
		case <-ctx.Done():
			return baton.Lease{}, nil, false
		case <-t.C():
		}
	}
	t.Reset(0)
	backoff := 10 * time.Millisecond
	var wake <-chan struct{} // the session's or the node's capacity
	for {
		select {
		case <-ctx.Done():
			return baton.Lease{}, nil, false
		case <-e.wake:
		case <-t.C():
		case <-wake:
			wake = nil
		}
		// Changed before Current: a change in between closes ch.
		ch := c.Session.Changed()
		nl, trust, ok := c.Session.Current()
		if !ok {
			wake = ch // wait for the session
			continue
		}
		var st baton.LockState
		if holder, freed := e.takeFreed(); freed {
			// Parked behind holder's lease, and woken because it ended
			// with holder's node lease (a crash, a shutdown): the lock is
			// free unless taken since, which the acquire finds out. A
			// crash frees thousands of topics at once, and this read
			// would be one more round trip for each (docs/benchmarks.md,
			// "Ten thousand topics").
			st = baton.LockState{Topic: c.Topic, Lease: baton.Lease{Topic: c.Topic, Holder: holder}}
		} else {
			var err error
			if st, err = c.Store.Lock(ctx, c.Topic); err != nil {
				if ctx.Err() != nil {
					return baton.Lease{}, nil, false
				}
				e.log.Warn("read lock", "err", err)
				t.Reset(jitter(backoff))
				backoff = min(backoff*2, c.Retry)
				continue
			}
		}
		backoff = 10 * time.Millisecond
		if st.Held && st.Lease.Holder == nl.Node && st.Lease.NodeEpoch == nl.Epoch {
			// Ours under the node lease we hold: an acquire whose answer
			// was lost, or a lease kept through a lapse of trust. Nobody
			// else may hold it while the node lease lives, so adopt it.
			e.log.Info("adopted a lease held under this node's lease", "epoch", st.Lease.Epoch)
			return st.Lease, trust, true
		}
		if st.Held {
			// Held elsewhere: its release, or the end of its holder's node
			// lease (which a Session turns into records), signals the lock
			// (kick). Wait for it with no goroutine.
			if e.parkOrWait(st, t) {
				return baton.Lease{}, nil, false
			}
			continue
		}
		if !c.Eligible() {
			wake = c.Capacity()
			continue
		}
		if d := c.Delay(st.Lease.Holder); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				c.Attempted(false, baton.Lease{})
				return baton.Lease{}, nil, false
			case <-t.C():
			}
			// Somebody ahead of us may have taken it meanwhile: a read
			// costs less than a refused acquire (a write). The read
			// answers for every change signalled so far: drop a pending
			// wake-up, so that a standby that loses the race reads the
			// lock once more, not twice, before it parks.
			select {
			case <-e.wake:
			default:
			}
			if holder, _, ok := e.heard(); ok && holder != nl.Node && holder != st.Lease.Holder {
				// Taken by another node since, as its acquisition's
				// message said: park behind it without a read (a change
				// after the drain above wakes the goroutine again, and
				// park refuses while that wake-up is pending). A name
				// that is the holder whose lease just ended is a hint
				// from before that end: read.
				c.Attempted(false, baton.Lease{})
				if e.park(holder) {
					return baton.Lease{}, nil, false
				}
				continue
			}
			if st, err := c.Store.Lock(ctx, c.Topic); err == nil && st.Held {
				c.Attempted(false, baton.Lease{})
				if st.Lease.Holder == nl.Node && st.Lease.NodeEpoch == nl.Epoch {
					t.Reset(0) // ours: the loop's read adopts it
					continue
				}
				// Held elsewhere, as this read says: park now, not after
				// one more read that would say the same.
				if e.parkOrWait(st, t) {
					return baton.Lease{}, nil, false
				}
				continue
			}
		}
		lease, err := c.Store.Acquire(ctx, c.Topic, nl)
		c.Attempted(err == nil, lease)
		switch {
		case err == nil:
			return lease, trust, true
		case errors.Is(err, baton.ErrLeaseHeld):
			t.Reset(0) // somebody won the race: read their lease
		case errors.Is(err, baton.ErrLeaseLost):
			wake = ch // our node lease ended: wait for the next
		default:
			if ctx.Err() != nil {
				return baton.Lease{}, nil, false
			}
			e.log.Warn("acquire lease", "err", err)
			t.Reset(jitter(backoff))
			backoff = min(backoff*2, c.Retry)
		}
	}
}

// active runs the runner while the lease is trusted. It returns the
// cooldown before racing again.
func (e *Elector) active(ctx context.Context, lease baton.Lease, trust context.Context) time.Duration {
	c := e.cfg
	e.log.Info("lease acquired", "epoch", lease.Epoch)
	since := c.Clock.Now()
	select {
	case <-e.handoff: // asked of an earlier lease
	default:
	}
	e.setRole(baton.RoleActive, lease, "acquired")

	runCtx, stop := context.WithCancel(ctx)
	stopTrust := context.AfterFunc(trust, stop)
	defer stopTrust()
	done := make(chan error, 1)
	go func(l baton.Lease) { done <- c.Run(runCtx, l) }(lease)
	stopRunner := func() error { stop(); return <-done }

	release := func(reason baton.ReleaseReason) {
		if reason == baton.ReasonReleased && c.Session.isLeaving() {
			return // the session releases every lease of the node at once
		}
		rctx, cancel := context.WithTimeout(context.Background(), c.Session.cfg.TTL)
		defer cancel()
		if err := c.Store.Release(rctx, lease, reason); err != nil {
			e.log.Warn("release lease", "epoch", lease.Epoch, "err", err)
		}
	}
	step := func(reason string) {
		e.log.Info("lease ended", "epoch", lease.Epoch, "reason", reason, "held", c.Clock.Now().Sub(since))
		e.setRole(baton.RoleStandby, baton.Lease{}, reason)
	}
	// check reads the lock a while after a change was signalled: at once
	// would read it for this lease's own acquisition, which is signalled
	// too, and so add a read to every hand-over while thousands of them
	// happen together. The store fences every write of a lease that is not
	// live anyway; the read only stops an idle runner sooner.
	check := c.Clock.NewTimer(time.Hour)
	check.Stop()
	defer check.Stop()
	checking := false
	for {
		select {
		case <-ctx.Done():
			stopRunner()
			release(baton.ReasonReleased)
			step("closed")
			return 0
		case err := <-done:
			stop()
			if ctx.Err() != nil {
				// Closing: the runner saw the cancellation first.
				release(baton.ReasonReleased)
				step("closed")
				return 0
			}
			if trust.Err() != nil {
				// Fail closed: the node lease could not be renewed in time.
				step("lapsed")
				return 0
			}
			if err == nil {
				err = errors.New("publisher stopped on its own")
			}
			if errors.Is(err, baton.ErrLeaseLost) {
				step("fenced")
				return 0
			}
			e.log.Error("publisher failed", "epoch", lease.Epoch, "err", err)
			release(baton.ReasonFailed)
			step("failed")
			return c.Cooldown
		case cooldown := <-e.handoff:
			stopRunner()
			release(baton.ReasonReleased)
			step("handed off")
			return cooldown
		case <-e.wake:
			if !checking {
				checking = true
				check.Reset(c.Session.cfg.TTL)
			}
		case <-check.C():
			checking = false
			e.checks.Add(1)
			select {
			case <-e.wake: // answered by this read
			default:
			}
			if h, ep, ok := e.heard(); ok && h == lease.Holder && ep == lease.Epoch {
				continue // the last change heard was our own acquisition
			}
			// Someone changed the lock: if it is not ours any more, stop
			// now rather than at the next write.
			st, err := c.Store.Lock(ctx, c.Topic)
			if err == nil && (st.Lease.Epoch != lease.Epoch || !st.Held) {
				stopRunner()
				step("lost")
				return 0
			}
		}
	}
}

// jitter returns d plus or minus up to 10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/10 + rand.N(d/5+1)
}
