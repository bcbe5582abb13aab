// Package elector runs the publish lock of one topic on one node: a small
// state machine that races for the lease when it is free, renews it while
// held, and fails closed.
//
// States: standby -> (acquired) -> active -> (lost, lapsed, failed or
// closed) -> standby. While active, the elector trusts its lease only until
// the local monotonic time at which it sent its last successful acquire or
// renew, plus TTL minus a margin; past that it stops the runner without
// waiting for the store. The store fences every write anyway (the epoch
// check), so the margin protects what the node does outside the store.
//
// Goroutines: Start runs one loop goroutine; while active, one runner
// goroutine. Close cancels the loop, which stops the runner, waits for it,
// then releases the lease so that a standby takes over at once.
package elector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
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
	Store  Store
	Topic  string
	Node   string
	TTL    time.Duration
	Renew  time.Duration // default TTL/4
	Margin time.Duration // default TTL/10
	// Poll is the longest a standby goes without reading the lock: the
	// fallback for lost notifications. Default TTL.
	Poll   time.Duration
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
	// Delay is waited before racing for a free lease; nodes that already
	// hold leases return more, so leadership spreads. Nil means none.
	Delay func() time.Duration
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
	if err := baton.ValidTopic(c.Topic); err != nil {
		return err
	}
	if c.Node == "" {
		return baton.Invalidf("node", "empty")
	}
	if c.TTL <= 0 {
		return baton.Invalidf("lease-ttl", "must be positive")
	}
	if c.Run == nil {
		return baton.Invalidf("run", "missing")
	}
	if c.Renew <= 0 {
		c.Renew = c.TTL / 4
	}
	if c.Margin <= 0 {
		c.Margin = c.TTL / 10
	}
	if c.Renew >= c.TTL-c.Margin {
		return baton.Invalidf("renew", "%v must be shorter than TTL minus margin (%v)", c.Renew, c.TTL-c.Margin)
	}
	if c.Poll <= 0 {
		c.Poll = c.TTL
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
	if c.Delay == nil {
		c.Delay = func() time.Duration { return 0 }
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

	// Under mu: set by Start and Close.
	cancel context.CancelFunc
	done   chan struct{}
	closed bool
	once   sync.Once
}

var _ baton.Service = (*Elector)(nil)

// New checks cfg and returns an elector; Start runs it.
func New(cfg Config) (*Elector, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new elector: %w", err)
	}
	return &Elector{cfg: cfg, log: cfg.Logger.With("topic", cfg.Topic), role: baton.RoleStandby}, nil
}

// Start runs the elector until Close (see baton.Service).
func (e *Elector) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return fmt.Errorf("start elector %s: %w", e.cfg.Topic, baton.ErrClosed)
	case e.done != nil:
		return fmt.Errorf("start elector %s: already started", e.cfg.Topic)
	}
	ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.done = make(chan struct{})
	go func() {
		defer close(e.done)
		e.loop(ctx)
	}()
	return nil
}

// Close stops the runner, releases the lease if held, and waits. It is
// idempotent.
func (e *Elector) Close() error {
	e.once.Do(func() {
		e.mu.Lock()
		e.closed = true
		cancel, done := e.cancel, e.done
		e.mu.Unlock()
		if cancel != nil {
			cancel()
			<-done
		}
	})
	return nil
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

func (e *Elector) loop(ctx context.Context) {
	sub := e.cfg.Store.Subscribe(e.cfg.Topic, baton.SignalLock)
	defer sub.Close()
	var cooldown time.Duration
	for {
		lease, sent, ok := e.standby(ctx, sub, cooldown)
		if !ok {
			return
		}
		cooldown = e.active(ctx, sub, lease, sent)
	}
}

// wait blocks until the timer fires, a lock signal arrives or ctx ends.
func wait(ctx context.Context, sub baton.Subscription, t baton.Timer) bool {
	select {
	case <-ctx.Done():
		return false
	case <-sub.C():
	case <-t.C():
	}
	return true
}

// standby waits for the lease to be free and races for it. It returns the
// lease and the local time at which the winning request was sent.
func (e *Elector) standby(ctx context.Context, sub baton.Subscription, cooldown time.Duration) (baton.Lease, time.Time, bool) {
	c := e.cfg
	t := c.Clock.NewTimer(cooldown)
	defer t.Stop()
	if cooldown > 0 {
		// After failing, let another node take the topic first.
		select {
		case <-ctx.Done():
			return baton.Lease{}, time.Time{}, false
		case <-t.C():
		}
		t.Reset(0)
	}
	backoff := 10 * time.Millisecond
	// unsure is set when an Acquire failed as unavailable: the store may
	// have granted the lease and lost only the reply (or, with replicas,
	// the acknowledgement). Such a lease is ours alone, and adopting it
	// (Renew) beats waiting a whole TTL for it to lapse.
	unsure := false
	for wait(ctx, sub, t) {
		st, err := c.Store.Lock(ctx, c.Topic)
		if err != nil {
			e.log.Warn("read lock", "err", err)
			t.Reset(jitter(backoff))
			backoff = min(backoff*2, c.Poll)
			continue
		}
		backoff = 10 * time.Millisecond
		if st.Held && unsure && st.Lease.Holder == c.Node {
			sent := c.Clock.Now()
			lease, err := c.Store.Renew(ctx, st.Lease, c.TTL)
			if err == nil {
				e.log.Info("adopted a lease whose acquire was not confirmed", "epoch", lease.Epoch)
				return lease, sent, true
			}
			if ctx.Err() != nil {
				return baton.Lease{}, time.Time{}, false
			}
			if !errors.Is(err, baton.ErrUnavailable) {
				unsure = false // fenced or lapsed: not ours to adopt
			}
			e.log.Warn("adopt lease", "epoch", st.Lease.Epoch, "err", err)
			t.Reset(jitter(backoff))
			backoff = min(backoff*2, c.Poll)
			continue
		}
		if st.Held && st.Lease.Holder != c.Node {
			unsure = false
		}
		if st.Held {
			// Arm a timer for the moment the lease lapses: a crashed
			// holder is noticed without waiting for anybody to tell us.
			t.Reset(min(st.Lease.Remaining+time.Millisecond, c.Poll))
			continue
		}
		if !c.Eligible() {
			if st.Lease.Epoch > 0 {
				// Not ours to take, but turn a lapsed lease into a release
				// record so that idle standbys are told now.
				if _, err := c.Store.Expire(ctx, c.Topic); err != nil && !errors.Is(err, baton.ErrNotFound) && !errors.Is(err, baton.ErrLeaseHeld) {
					e.log.Warn("expire lease", "err", err)
				}
			}
			t.Reset(jitter(c.Poll))
			continue
		}
		if d := c.Delay(); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				c.Attempted(false, baton.Lease{})
				return baton.Lease{}, time.Time{}, false
			case <-t.C():
			}
		}
		sent := c.Clock.Now()
		lease, err := c.Store.Acquire(ctx, c.Topic, c.Node, c.TTL)
		c.Attempted(err == nil, lease)
		switch {
		case err == nil:
			return lease, sent, true
		case errors.Is(err, baton.ErrLeaseHeld):
			t.Reset(0) // somebody won the race: read their lease
		default:
			if ctx.Err() != nil {
				return baton.Lease{}, time.Time{}, false
			}
			e.log.Warn("acquire lease", "err", err)
			unsure = unsure || errors.Is(err, baton.ErrUnavailable)
			t.Reset(jitter(backoff))
			backoff = min(backoff*2, c.Poll)
		}
	}
	return baton.Lease{}, time.Time{}, false
}

// active runs the runner while the lease is trusted. It returns the
// cooldown before racing again.
func (e *Elector) active(ctx context.Context, sub baton.Subscription, lease baton.Lease, sent time.Time) time.Duration {
	c := e.cfg
	e.log.Info("lease acquired", "epoch", lease.Epoch)
	e.setRole(baton.RoleActive, lease, "acquired")
	trustUntil := sent.Add(c.TTL - c.Margin)

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func(l baton.Lease) { done <- c.Run(runCtx, l) }(lease)
	stopRunner := func() error { stop(); return <-done }

	renew := c.Clock.NewTimer(c.Renew)
	defer renew.Stop()
	trust := c.Clock.NewTimer(trustUntil.Sub(c.Clock.Now()))
	defer trust.Stop()

	release := func(reason baton.ReleaseReason) {
		rctx, cancel := context.WithTimeout(context.Background(), c.TTL)
		defer cancel()
		if err := c.Store.Release(rctx, lease, reason); err != nil {
			e.log.Warn("release lease", "epoch", lease.Epoch, "err", err)
		}
	}
	step := func(reason string) {
		e.log.Info("lease ended", "epoch", lease.Epoch, "reason", reason)
		e.setRole(baton.RoleStandby, baton.Lease{}, reason)
	}
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
			return c.TTL / 2
		case <-trust.C():
			if c.Clock.Now().Before(trustUntil) {
				trust.Reset(trustUntil.Sub(c.Clock.Now()))
				continue
			}
			// Fail closed: we could not renew in time.
			stopRunner()
			step("lapsed")
			return 0
		case <-sub.C():
			// Someone changed the lock: if it is not ours any more, stop
			// now rather than at the next renewal.
			st, err := c.Store.Lock(ctx, c.Topic)
			if err == nil && (st.Lease.Epoch != lease.Epoch || !st.Held) {
				stopRunner()
				step("lost")
				return 0
			}
		case <-renew.C():
			if !c.Clock.Now().Before(trustUntil) {
				stopRunner()
				step("lapsed")
				return 0
			}
			sent := c.Clock.Now()
			rctx, cancel := context.WithTimeout(ctx, trustUntil.Sub(sent))
			l, err := c.Store.Renew(rctx, lease, c.TTL)
			cancel()
			switch {
			case err == nil:
				lease = l
				trustUntil = sent.Add(c.TTL - c.Margin)
				trust.Reset(trustUntil.Sub(c.Clock.Now()))
				renew.Reset(c.Renew)
			case errors.Is(err, baton.ErrLeaseLost):
				stopRunner()
				step("lost")
				return 0
			default:
				if ctx.Err() != nil {
					continue // handled by the ctx.Done case
				}
				e.log.Warn("renew lease", "epoch", lease.Epoch, "err", err)
				renew.Reset(min(c.Renew/4, 100*time.Millisecond))
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
