package elector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// SessionConfig configures a Session.
type SessionConfig struct {
	Store Store
	Node  string
	TTL   time.Duration
	// Renew is how often the node lease is renewed (default TTL/4).
	Renew time.Duration
	// Margin is how long before the node lease's expiry, on the local
	// monotonic clock, the node stops trusting it (default TTL/10).
	Margin time.Duration
	// Watch is the longest the session goes without reading the other
	// nodes' leases when no lease is due to lapse sooner: the fallback for
	// a lost SignalNode (default 10 TTL).
	Watch  time.Duration
	Clock  baton.Clock
	Logger *slog.Logger
	// OnChange is told when the node lease starts, is renewed after a lapse
	// of trust, lapses or ends (trusted reports whether it may be used). It
	// must not block.
	OnChange func(nl baton.NodeLease, trusted bool)
	// OnEnded is told when the watcher finds that another node's lease
	// ended: it lapsed (this session then ends it in the store, or finds it
	// ended already) or it is no longer listed (released, or ended by
	// another node). The standbys parked behind that node may race
	// (Elector.HolderEnded). It must not block.
	OnEnded func(node string)
}

func (c *SessionConfig) validate() error {
	if c.Store == nil {
		return baton.Invalidf("store", "missing")
	}
	if c.Node == "" {
		return baton.Invalidf("node", "empty")
	}
	if c.TTL <= 0 {
		return baton.Invalidf("lease-ttl", "must be positive")
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
	if c.Watch <= 0 {
		c.Watch = 10 * c.TTL
	}
	if c.Clock == nil {
		c.Clock = baton.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OnChange == nil {
		c.OnChange = func(baton.NodeLease, bool) {}
	}
	if c.OnEnded == nil {
		c.OnEnded = func(string) {}
	}
	return nil
}

// Session keeps one node's liveness lease (docs/design.md, node leases):
// every topic lease the node's electors hold lives under it, so one
// renewal on one timer keeps them all, whatever their number. It fails
// closed on the local monotonic clock: the node lease is trusted only until
// the local time its last successful acquire or renew was sent, plus TTL
// minus Margin; past that every elector's runner is stopped (the context of
// Current ends) without waiting for the store.
//
// A session also watches the other nodes' leases: when one lapses it ends
// it in the store (ExpireNode), which releases every topic of the crashed
// node at once and wakes the standbys. The store's signals of that end
// (SignalFreed) are one way the standbys learn of it; the watcher's own
// finding (OnEnded) is another, which needs no notification: a crash
// hand-over then waits for no pub/sub message (docs/reliability.md).
//
// Goroutines: Start runs two, the keeper and the watcher. Close stops them
// and releases the node lease (every topic lease under it, in one step).
type Session struct {
	cfg SessionConfig
	log *slog.Logger

	mu      sync.Mutex
	lease   baton.NodeLease // zero when none
	trusted bool
	trust   context.Context // ends when trust does
	untrust context.CancelFunc
	changed chan struct{} // closed at the next change
	leaving bool
	others  []baton.NodeLease // every node lease as the watcher last read them
	readAt  time.Time         // when, on the local clock

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

var _ baton.Service = (*Session)(nil)

// NewSession checks cfg and returns a session; Start runs it.
func NewSession(cfg SessionConfig) (*Session, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	s := &Session{cfg: cfg, log: cfg.Logger, changed: make(chan struct{})}
	s.trust, s.untrust = context.WithCancel(context.Background())
	s.untrust()
	return s, nil
}

// Start runs the session until Close (see baton.Service). It tries to
// acquire the node lease once before it returns, and goes on trying in the
// background: a node restarted under the same name waits for its previous
// node lease to lapse.
func (s *Session) Start(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.leaving:
		s.mu.Unlock()
		return fmt.Errorf("start session: %w", baton.ErrClosed)
	case s.done != nil:
		s.mu.Unlock()
		return errors.New("start session: already started")
	}
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = make(chan struct{})
	s.mu.Unlock()
	first := s.acquire(ctx)
	go func() {
		defer close(s.done)
		var wg sync.WaitGroup
		wg.Go(func() { s.keep(ctx, first) })
		wg.Go(func() { s.watch(ctx) })
		wg.Wait()
	}()
	return nil
}

// Leaving marks the session as closing: electors closed from now on leave
// their leases to Close, which releases them all in one step.
func (s *Session) Leaving() {
	s.mu.Lock()
	s.leaving = true
	s.mu.Unlock()
}

func (s *Session) isLeaving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leaving
}

// Close stops the session and releases the node lease, and with it every
// topic lease still held under it. It is idempotent.
func (s *Session) Close() error {
	s.once.Do(func() {
		s.Leaving()
		s.mu.Lock()
		cancel, done := s.cancel, s.done
		s.mu.Unlock()
		if cancel == nil {
			return
		}
		cancel()
		<-done
		s.mu.Lock()
		nl := s.lease
		s.mu.Unlock()
		s.set(baton.NodeLease{}, false)
		if nl.Epoch == 0 {
			return
		}
		ctx, stop := context.WithTimeout(context.Background(), s.cfg.TTL)
		defer stop()
		recs, err := s.cfg.Store.ReleaseNode(ctx, nl, baton.ReasonReleased)
		if err != nil {
			s.log.Warn("release node lease", "epoch", nl.Epoch, "err", err)
			return
		}
		s.log.Info("node lease released", "epoch", nl.Epoch, "topics", len(recs))
	})
	return nil
}

// Current returns the node lease to acquire topics under, and a context
// that ends when it may no longer be trusted. ok is false while there is no
// trusted node lease: wait for Changed.
func (s *Session) Current() (nl baton.NodeLease, trust context.Context, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease, s.trust, s.trusted && !s.leaving
}

// Leases returns every node lease (this node's too) as the session last
// read them, with the number of topic leases under each: the load of each
// node, refreshed at least once per TTL. Each Remaining is counted down
// to now, so a node lease that lapsed since the read shows none left.
func (s *Session) Leases() []baton.NodeLease {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.others)
	age := s.cfg.Clock.Now().Sub(s.readAt)
	for i := range out {
		out[i].Remaining -= age
	}
	return out
}

// Ended reports whether node's lease of the given epoch is known to have
// ended: the session's last read of the node leases, made after node's
// lease began, does not list it, or lists it lapsed. A topic lock still held under it is a copy
// that its end did not reach (Redis Cluster's copies of a node lease in
// each bucket, when a bucket was unreachable: docs/reliability.md), which
// lapses on its own with no signal. Before the first read, and for epoch
// 0, it says false.
func (s *Session) Ended(node string, epoch uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readAt.IsZero() || epoch == 0 {
		return false
	}
	age := s.cfg.Clock.Now().Sub(s.readAt)
	for _, nl := range s.others {
		if nl.Node == node && nl.Epoch == epoch {
			return nl.Remaining-age <= 0 // listed, but lapsed since
		}
	}
	return true
}

// Changed returns a channel closed at the next change of Current.
func (s *Session) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// set changes the node lease and its trust, and wakes Changed.
func (s *Session) set(nl baton.NodeLease, trusted bool) {
	s.mu.Lock()
	if trusted && !s.trusted {
		s.trust, s.untrust = context.WithCancel(context.Background())
	}
	if !trusted {
		s.untrust()
	}
	s.lease, s.trusted = nl, trusted
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.cfg.OnChange(nl, trusted)
}

// acquired is a node lease and the local time its request was sent.
type acquired struct {
	lease baton.NodeLease
	sent  time.Time
	ok    bool
}

// acquire tries once to start a node lease.
func (s *Session) acquire(ctx context.Context) acquired {
	sent := s.cfg.Clock.Now()
	nl, err := s.cfg.Store.AcquireNode(ctx, s.cfg.Node, s.cfg.TTL)
	switch {
	case err == nil:
		s.log.Info("node lease acquired", "epoch", nl.Epoch)
		s.set(nl, true)
		return acquired{nl, sent, true}
	case ctx.Err() != nil:
	case errors.Is(err, baton.ErrLeaseHeld):
		s.log.Warn("node lease held by an earlier process of this node: waiting for it to lapse", "err", err)
	default:
		s.log.Warn("acquire node lease", "err", err)
	}
	return acquired{}
}

// keep holds the node lease: renews it every Renew, stops trusting it at
// its trust deadline, and starts a new one when it was lost.
func (s *Session) keep(ctx context.Context, a acquired) {
	c := s.cfg
	renew := c.Clock.NewTimer(c.Renew)
	defer renew.Stop()
	trust := c.Clock.NewTimer(c.TTL)
	defer trust.Stop()
	var trustUntil time.Time
	if a.ok {
		trustUntil = a.sent.Add(c.TTL - c.Margin)
		trust.Reset(trustUntil.Sub(c.Clock.Now()))
	}
	backoff := 10 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-trust.C():
			if a.ok && !c.Clock.Now().Before(trustUntil) {
				s.mu.Lock()
				was := s.trusted
				s.mu.Unlock()
				if was {
					s.log.Warn("node lease not renewed in time: stepping down", "epoch", a.lease.Epoch,
						"since_renewal", c.Clock.Now().Sub(trustUntil.Add(-(c.TTL - c.Margin))))
					s.set(a.lease, false)
				}
			}
			trust.Reset(c.TTL)
			continue
		case <-renew.C():
		}
		if !a.ok {
			if a = s.acquire(ctx); a.ok {
				trustUntil = a.sent.Add(c.TTL - c.Margin)
				trust.Reset(trustUntil.Sub(c.Clock.Now()))
				renew.Reset(c.Renew)
				backoff = 10 * time.Millisecond
				continue
			}
			renew.Reset(jitter(min(backoff, c.Renew)))
			backoff = min(backoff*2, c.Renew)
			continue
		}
		sent := c.Clock.Now()
		// A renewal sent after the trust deadline still keeps the lease if
		// the store has it live: electors adopt their topic leases again.
		rctx, cancel := context.WithTimeout(ctx, max(trustUntil.Sub(sent), c.Margin))
		nl, err := c.Store.RenewNode(rctx, a.lease, c.TTL)
		cancel()
		switch {
		case err == nil:
			a.lease = nl
			trustUntil = sent.Add(c.TTL - c.Margin)
			trust.Reset(trustUntil.Sub(c.Clock.Now()))
			s.mu.Lock()
			was := s.trusted
			s.lease = nl
			s.mu.Unlock()
			if !was {
				s.log.Info("node lease renewed after a lapse of trust", "epoch", nl.Epoch)
				s.set(nl, true)
			}
			renew.Reset(c.Renew)
		case errors.Is(err, baton.ErrLeaseLost):
			s.log.Warn("node lease lost", "epoch", a.lease.Epoch, "err", err)
			s.set(baton.NodeLease{}, false)
			a = acquired{}
			renew.Reset(0)
		default:
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("renew node lease", "epoch", a.lease.Epoch, "err", err)
			renew.Reset(min(c.Renew/4, 100*time.Millisecond))
		}
	}
}

// watch ends the other nodes' lapsed node leases: it reads them all, arms a
// timer for the first one due to lapse, and ends each that has (ExpireNode).
// A node lease's start and end are signalled (SignalNode); its renewals are
// not, so the timer re-reads at each expiry it knows of: O(nodes) reads per
// TTL, whatever the number of topics.
func (s *Session) watch(ctx context.Context) {
	c := s.cfg
	sub := c.Store.Subscribe("", baton.SignalNode)
	defer sub.Close()
	t := c.Clock.NewTimer(0)
	defer t.Stop()
	backoff := 10 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-sub.C():
		case <-t.C():
		}
		next, err := s.expireLapsed(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("read node leases", "err", err)
			t.Reset(jitter(backoff))
			backoff = min(backoff*2, c.TTL)
			continue
		}
		backoff = 10 * time.Millisecond
		t.Reset(next)
	}
}

// expireLapsed ends every other node's lapsed node lease and returns how
// long until the next one may lapse.
func (s *Session) expireLapsed(ctx context.Context) (time.Duration, error) {
	sent := s.cfg.Clock.Now()
	leases, err := s.cfg.Store.NodeLeases(ctx)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	before := s.others
	s.others, s.readAt = leases, sent
	s.mu.Unlock()
	for _, old := range before {
		// Listed before, gone now or under another epoch: released, or
		// ended by another node (and perhaps started again since).
		if old.Node != s.cfg.Node && !slices.ContainsFunc(leases, func(nl baton.NodeLease) bool {
			return nl.Node == old.Node && nl.Epoch == old.Epoch
		}) {
			s.cfg.OnEnded(old.Node)
		}
	}
	next := s.cfg.Watch
	for _, nl := range leases {
		if nl.Node == s.cfg.Node {
			continue // our own: the keeper's
		}
		if nl.Remaining > 0 {
			next = min(next, nl.Remaining+time.Millisecond)
			continue
		}
		recs, err := s.cfg.Store.ExpireNode(ctx, nl.Node)
		switch {
		case err == nil:
			s.log.Info("ended a lapsed node lease", "lapsed", nl.Node, "epoch", nl.Epoch, "topics", len(recs))
			s.cfg.OnEnded(nl.Node)
		case errors.Is(err, baton.ErrNotFound):
			// Another node ended it first.
			s.cfg.OnEnded(nl.Node)
			next = min(next, s.cfg.Renew)
		case errors.Is(err, baton.ErrLeaseHeld):
			// Renewed just now.
			next = min(next, s.cfg.Renew)
		default:
			return 0, err
		}
	}
	return next, nil
}
