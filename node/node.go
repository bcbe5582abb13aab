// Package node is one Baton server: it finds the topics in the store, runs
// an elector per topic (the lease holder runs the publisher), heartbeats its
// membership, trims old published items and reports its status. The HTTP
// API and the terminal hub are wired beside it by cmd/baton.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/elector"
	"github.com/baton-pub/baton/ledger"
	"github.com/baton-pub/baton/publisher"
)

// Config configures a node.
type Config struct {
	Node  string
	Addr  string // advertised HTTP address
	Store string // store URL, for status (without secrets)
	// TTL is the publish lease's time to live.
	TTL time.Duration
	// MaxLeases is how many topics this node may publish at once; 0 means
	// no limit. A node at its limit is not idle and does not race.
	MaxLeases int
	// MaxTopics is how many topics the store may hold before AdmitTopic
	// refuses to create another; 0 means no limit.
	MaxTopics int
	// Batch is the most items one commit publishes (publisher.DefaultBatch
	// if 0).
	Batch int
	// Retain is how many published items a topic keeps, and RetainAge
	// for how long, unless the topic has a retention of its own
	// (baton.Retention); older ones are trimmed by the topic's publisher.
	// 0 is no limit.
	Retain    uint64
	RetainAge time.Duration
	// TopicDeleted, if set, is told of every topic deleted while the node
	// serves it (Forget): the hub ends its terminals.
	TopicDeleted func(topic string)
	// Handoff, if set, is told when this node's publisher of a topic
	// starts and stops and handed each of its commits' items: the hub
	// then feeds this node's terminals without reading them back
	// (hub/local.go).
	Handoff Handoff
	Clock   baton.Clock
	Logger  *slog.Logger
	// Terminals counts this node's terminals on a topic (from the hub).
	Terminals func(topic string) int
	// PublicKey is registered with the membership (ledger signatures).
	// It defaults to Key's.
	PublicKey []byte
	// Key, if set, signs the ledger checkpoints of the topics this node
	// publishes (see package ledger).
	Key *ledger.Key
	// Witness, if set, keeps this node's copy of every topic's ledger,
	// checks and cosigns checkpoints, and reports in Status.
	Witness *ledger.Witness
	// CheckpointEvery and CheckpointInterval set the checkpoint cadence
	// (defaults ledger.DefaultEvery, ledger.DefaultInterval).
	CheckpointEvery    uint64
	CheckpointInterval time.Duration
	// StallAfter is how long a topic this node publishes may have items
	// waiting and its cursor still before it is reported stalled (default
	// max(10s, 5 TTL)).
	StallAfter time.Duration
	// OnHandover, if set, is told of each hand-over to this node once,
	// with the record of the lease it followed (for the metrics). It runs
	// on a goroutine of its own, after the store answered.
	OnHandover func(baton.ReleaseRecord)
	// Notifications, if set, reports nil while the store's change
	// notifications are subscribed, else why not (redis.Store's): lost
	// for longer than TTL, it is a problem (GET /readyz answers 503).
	Notifications func() error
	// PeerWatch holds a connection to each live peer's Addr, and ends the
	// node lease of a peer whose address refuses connections after one
	// was held: its process is gone (peers.go). PeerTLS dials them with
	// TLS (the peers serve it).
	PeerWatch, PeerTLS bool
	// OnFailClosed, if set, is told of each topic lease this node stopped
	// publishing under because its node lease could not be renewed in
	// time (it failed closed, see elector.Session). It must not block.
	OnFailClosed func(topic string)
}

// Validate fills defaults and names the first bad field.
func (c *Config) Validate() error {
	if c.Node == "" {
		return baton.Invalidf("node", "empty")
	}
	if err := validNode(c.Node); err != nil {
		return err
	}
	if c.TTL < 50*time.Millisecond {
		return baton.Invalidf("lease-ttl", "%v is too short (at least 50ms)", c.TTL)
	}
	if c.MaxLeases < 0 {
		return baton.Invalidf("max-leases", "must not be negative")
	}
	if c.RetainAge != 0 && (c.RetainAge < baton.MinRetainAge || c.RetainAge > baton.MaxRetainAge) {
		return baton.Invalidf("retain-age", "%v is out of range (0 for none, or %v to %v)", c.RetainAge, baton.MinRetainAge, baton.MaxRetainAge)
	}
	if c.Retain > baton.MaxRetainItems {
		return baton.Invalidf("retain", "%d is more than %d", c.Retain, int64(baton.MaxRetainItems))
	}
	if c.MaxTopics < 0 {
		return baton.Invalidf("max-topics", "must not be negative")
	}
	if c.Batch <= 0 {
		c.Batch = publisher.DefaultBatch
	}
	if c.StallAfter <= 0 {
		c.StallAfter = max(10*time.Second, 5*c.TTL)
	}
	if c.Clock == nil {
		c.Clock = baton.SystemClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Terminals == nil {
		c.Terminals = func(string) int { return 0 }
	}
	if c.Key != nil {
		if c.Key.Node != c.Node {
			return baton.Invalidf("key", "the key is named %q, not the node id %q", c.Key.Node, c.Node)
		}
		if len(c.PublicKey) == 0 {
			c.PublicKey = c.Key.Public
		}
	}
	return nil
}

func validNode(s string) error {
	if len(s) > 64 {
		return baton.Invalidf("node", "longer than 64 characters")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return baton.Invalidf("node", "character %q not allowed (use A-Z a-z 0-9 . _ -)", r)
		}
	}
	return nil
}

var _ baton.Service = (*Node)(nil)

// Node is one Baton server's control plane.
type Node struct {
	cfg   Config
	store baton.Store
	log   *slog.Logger
	start time.Time

	session  *elector.Session
	peers    *peerWatch    // nil without Config.PeerWatch; set in New
	capacity chan struct{} // closed and replaced when a lease ends (MaxLeases)
	resume   *resumeGate   // leases resuming hold back checkpointers (resume.go)

	mu       sync.Mutex
	electors map[string]*elector.Elector
	active   map[string]baton.Lease
	racing   int       // electors between Eligible and Attempted
	taken    time.Time // when the node last took a lease (balance)
	// commits has when each topic this node publishes last committed,
	// so that balancing hands over the idlest first (balance.go). Its
	// own lock: every commit writes it.
	commits  lastCommits
	topics   topicCap   // has its own lock
	health   health     // has its own lock
	lease    leaseState // has its own lock
	started  bool       // Start was called (and has not failed)
	draining bool       // Drain was called: hold no lease
	closing  bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
	handed handovers // has its own lock
	once   sync.Once
}

// New returns a node on store; Start runs it.
func New(store baton.Store, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, store: store, log: cfg.Logger, topics: topicCap{max: cfg.MaxTopics},
		electors: make(map[string]*elector.Elector), active: make(map[string]baton.Lease), resume: newResumeGate(cfg.Clock, resumeQuiet),
		capacity: make(chan struct{})}
	if cfg.Witness != nil {
		// The witness's rounds wait, as checkpointers do, while leases of
		// this node resume (resume.go), resumeHoldMax from when the gate
		// shut at most: the witness waits before every round, and while
		// topics are created or move for long (10,000 new topics take
		// 15 s) a bound per round held all of them, and left the witness
		// cosigning the new checkpoints 30 s after the last creation
		// (docs/benchmarks.md, "Fewer statements per topic in a mass
		// hand-over").
		cfg.Witness.HoldRounds(func(ctx context.Context) { n.resume.waitShut(ctx, resumeHoldMax) })
	}
	s, err := elector.NewSession(elector.SessionConfig{Store: store, Node: cfg.Node, TTL: cfg.TTL,
		Clock: cfg.Clock, Logger: cfg.Logger, OnChange: func(nl baton.NodeLease, trusted bool) {
			n.lease.set(nl, trusted, cfg.Clock.Now())
		}, OnEnded: n.holderEnded})
	if err != nil {
		return nil, err
	}
	n.session = s
	if cfg.PeerWatch {
		n.peers = n.newPeerWatch()
	}
	return n, nil
}

// Start registers the node and begins racing for every topic's lease (see
// baton.Service): it fails if the first heartbeat fails.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	switch {
	case n.closing:
		n.mu.Unlock()
		return fmt.Errorf("start node: %w", baton.ErrClosed)
	case n.started:
		n.mu.Unlock()
		return errors.New("start node: already started")
	}
	n.started = true
	n.mu.Unlock()
	n.start = n.cfg.Clock.Now()
	if err := n.heartbeat(ctx); err != nil {
		n.mu.Lock()
		n.started = false
		n.mu.Unlock()
		return fmt.Errorf("start node: %w", err)
	}
	// Electors for the topics there are now, before the node lease: once
	// the other nodes see this node's lease they hand it topics
	// (balance), and a topic handed to a node that has no elector for it
	// yet is taken back by another, to be handed over again. (Until the
	// session starts, the electors wait for it.)
	sub := n.store.Subscribe("", baton.SignalTopic)
	listed := n.discoverOnce(ctx, nil)
	n.mu.Lock()
	if n.closing {
		// Closed while registering: the membership lapses on its own.
		// Close found no cancel: it left the electors to us.
		els := make([]*elector.Elector, 0, len(n.electors))
		for _, e := range n.electors {
			els = append(els, e)
		}
		n.mu.Unlock()
		sub.Close()
		n.stopElectors(els)
		return fmt.Errorf("start node: %w", baton.ErrClosed)
	}
	defer n.mu.Unlock()
	ctx, n.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := n.session.Start(ctx); err != nil {
		sub.Close()
		return fmt.Errorf("start node: %w", err)
	}
	n.wg.Add(3)
	go func() { defer n.wg.Done(); defer sub.Close(); n.discover(ctx, sub, listed) }()
	go func() { defer n.wg.Done(); n.heartbeats(ctx) }()
	go func() { defer n.wg.Done(); n.balance(ctx) }()
	if n.peers != nil {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.peers.run(ctx) }()
	}
	return nil
}

// Close hands every lease over (stops publishing, then releases the node
// lease, which ends every topic lease in one step), leaves the membership
// and waits for the node's goroutines. It is idempotent.
func (n *Node) Close() error {
	n.once.Do(func() {
		n.mu.Lock()
		n.closing = true
		els := make([]*elector.Elector, 0, len(n.electors))
		for _, e := range n.electors {
			els = append(els, e)
		}
		cancel := n.cancel
		n.mu.Unlock()
		if cancel == nil {
			return // never started: nothing joined, nothing to leave
		}
		cancel()
		n.wg.Wait()
		// Stop every publisher, then release every lease in one step.
		n.session.Leaving()
		n.stopElectors(els)
		n.session.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := n.store.Leave(ctx, n.cfg.Node); err != nil {
			n.log.Warn("leave membership", "err", err)
		}
		n.handed.stop()
	})
	return nil
}

// discoverEvery is how often discover lists the store's topics without a
// SignalTopic: the fallback for a lost one, spread out because a listing
// reads every topic.
const discoverEvery = 30 * time.Second

// discoverGap is the least time between two listings woken by new topics.
const discoverGap = 100 * time.Millisecond

// discover starts an elector for every topic in the store, now and as
// topics appear.
func (n *Node) discover(ctx context.Context, sub baton.Subscription, listed []string) {
	t := time.NewTicker(max(n.cfg.TTL, discoverEvery))
	defer t.Stop()
	for first := true; ; first = false {
		if !first {
			listed = n.discoverOnce(ctx, listed)
		}
		select {
		case <-ctx.Done():
			return
		case <-sub.C():
			// Topics created in a burst are listed together: a listing
			// reads every topic, one per new topic would cost the square.
			wait := time.NewTimer(discoverGap)
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-wait.C:
			}
		case <-t.C:
		}
	}
}

// discoverOnce lists the store's topics, forgets those gone since listed
// (the previous listing, sorted) and starts an elector for every new one.
// It returns the new listing (listed again if the store could not be
// read).
func (n *Node) discoverOnce(ctx context.Context, listed []string) []string {
	at := n.cfg.Clock.Now()
	topics, err := n.store.Topics(ctx)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("list topics", "err", err)
		}
		return listed
	}
	// Forget the deleted topics before the node stops listing them
	// (Status): once it does not, it has stopped serving them.
	n.prune(listed, topics)
	n.topics.set(topics, at)
	for _, topic := range topics {
		n.ensure(ctx, topic)
	}
	return topics
}

func (n *Node) ensure(ctx context.Context, topic string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing || n.electors[topic] != nil {
		return
	}
	var raced func() // the race under way counted out (resume.go); under mu
	e, err := elector.New(elector.Config{
		Store: n.store, Session: n.session, Topic: topic,
		Clock: n.cfg.Clock, Logger: n.log,
		Run: func(ctx context.Context, lease baton.Lease) error {
			return n.publish(ctx, lease)
		},
		// A race holds a place under MaxLeases until it is decided: two
		// electors must not both take the last one.
		Eligible: func() bool {
			n.mu.Lock()
			defer n.mu.Unlock()
			if n.draining {
				return false
			}
			if n.cfg.MaxLeases != 0 && len(n.active)+n.racing >= n.cfg.MaxLeases {
				return false
			}
			n.racing++
			// A race holds checkpointers back as a lease resuming does
			// (resume.go): in a mass hand-over the races come first.
			raced = n.resume.begin()
			return true
		},
		Attempted: func(acquired bool, lease baton.Lease) {
			n.mu.Lock()
			defer n.mu.Unlock()
			if raced != nil {
				raced()
				raced = nil
			}
			n.racing--
			if n.cfg.MaxLeases == 0 {
				return
			}
			if acquired {
				n.active[lease.Topic] = lease
			} else {
				n.freed()
			}
		},
		Capacity: func() <-chan struct{} {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.capacity
		},
		Delay: func(last string) time.Duration { return n.raceDelay(topic, last) },
		OnChange: func(c elector.Change) {
			n.mu.Lock()
			if c.Role == baton.RoleActive {
				n.taken = n.cfg.Clock.Now()
				n.active[c.Topic] = c.Lease
				n.acquired(c.Lease)
			} else if _, ok := n.active[c.Topic]; ok {
				n.steppedDown(c)
				delete(n.active, c.Topic)
				n.freed()
			}
			n.mu.Unlock()
		},
	})
	if err != nil {
		n.log.Error("new elector", "topic", topic, "err", err)
		return
	}
	// Follow the ledger first: if this node wins the lease, its
	// checkpointer appends to the witness's copy.
	if n.cfg.Witness != nil {
		if err := n.cfg.Witness.Follow(topic); err != nil && ctx.Err() == nil {
			n.log.Error("follow ledger", "topic", topic, "err", err)
		}
	}
	if err := e.Start(ctx); err != nil {
		n.log.Error("start elector", "topic", topic, "err", err)
		return
	}
	n.electors[topic] = e
}

// holderEnded wakes the standbys parked behind node, whose lease ended
// (elector.SessionConfig.OnEnded): they race without waiting for the
// store's signal of it.
func (n *Node) holderEnded(node string) {
	n.mu.Lock()
	es := make([]*elector.Elector, 0, len(n.electors))
	for _, e := range n.electors {
		es = append(es, e)
	}
	n.mu.Unlock()
	for _, e := range es {
		e.HolderEnded(node)
	}
}

// freed wakes the electors waiting for capacity. Callers hold mu.
func (n *Node) freed() {
	close(n.capacity)
	n.capacity = make(chan struct{})
}

func (n *Node) publish(ctx context.Context, lease baton.Lease) error {
	// Where publishing resumes, once for the publisher, its trimmer, its
	// checkpointer and the witness's copy: a crash hands thousands of
	// topics over at once, and every read counts. The engines read the
	// cursor in the acquire itself (Lease.Cursor); an adopted lease has
	// none, and reads it here.
	var cur baton.Cursor
	var err error
	if lease.Cursor != nil {
		cur = *lease.Cursor
	} else if cur, err = n.store.Cursor(ctx, lease.Topic); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("resume %s: read cursor: %w", lease.Topic, err)
	}
	// The cursor is checked against the index beside the first read of
	// the queue, not before it: the publisher commits nothing until the
	// check is done.
	checked := make(chan error, 1)
	var checking sync.WaitGroup
	if r := lease.Resume; r != nil && r.Checked && lease.Cursor != nil {
		checked <- nil // checked by the acquire, in the same step
	} else {
		checking.Go(func() { checked <- publisher.CheckResume(ctx, n.store, lease.Topic, cur) })
	}
	defer checking.Wait()
	resumed := n.resume.begin()
	defer resumed()
	o := publisher.Options{Batch: n.cfg.Batch, Clock: n.cfg.Clock, Logger: n.log, From: &cur, Checked: checked,
		Resumed: resumed, ResumeWait: resumeHoldMax}
	// A trimmer for every lease: a topic's own retention may ask for one
	// whatever the node's defaults. It holds no goroutine while idle.
	tctx, stop := context.WithCancel(ctx)
	// Its first read of the retention waits, as the checkpointer's setup
	// does, for this node's leases to resume (resume.go).
	t := newTrimmerFrom(tctx, n.store, lease.Topic, cur, n.cfg.Retain, n.cfg.RetainAge, trimEvery, n.cfg.Clock, n.log,
		func(ctx context.Context) { n.resume.wait(ctx, resumeHoldMax) })
	o.OnCommit = func(c baton.Cursor, k int) {
		t.committed(c, k)
		n.commits.note(lease.Topic, n.cfg.Clock.Now())
	}
	defer n.commits.forget(lease.Topic)
	if h := n.cfg.Handoff; h != nil {
		h.Publishing(lease.Topic, true)
		defer h.Publishing(lease.Topic, false)
		o.OnPublished = func(ps []baton.Published) { h.Published(lease.Topic, ps) }
	}
	defer func() { stop(); t.wait() }()
	if n.cfg.Key != nil {
		cc := ledger.CheckpointerConfig{Store: n.store, Lease: lease, Key: n.cfg.Key,
			Every: n.cfg.CheckpointEvery, Interval: n.cfg.CheckpointInterval, Logger: n.log, Cursor: &cur}
		if w := n.cfg.Witness; w != nil {
			cc.Halted = func() *baton.LedgerHalt { return w.Halted(lease.Topic) }
		}
		if w := n.cfg.Witness; w != nil && n.copyFits(lease.Topic, cur) {
			// Sign from (and append to) this node's copy: each leaf is
			// hashed once on this node.
			cc.Tree = w.Tree(lease.Topic)
			cc.OnAppend = func() { w.Fed(lease.Topic) }
		}
		// A lease whose publications are no longer signed must not go on:
		// if the checkpointer stops on its own (fenced, or the ledger in
		// the store does not add up), publishing stops too and the
		// elector releases the lease as failed; the next holder's
		// checkpointer starts over from the store.
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cc.OnStop = cancel
		cp, err := ledger.NewCheckpointer(cc)
		if err != nil {
			return err
		}
		// Started once this node's leases have resumed (resume.go): in a
		// mass hand-over the first commits go first. Until it starts it
		// only queues the leaves it is handed.
		sctx, stopStarting := context.WithCancel(ctx)
		var starting sync.WaitGroup
		starting.Go(func() {
			if n.resume.wait(sctx, resumeHoldMax) {
				cp.Start(ctx)
			}
		})
		defer cp.Close()
		defer func() { stopStarting(); starting.Wait() }()
		o.Ledger = cp
		err = publisher.Run(pctx, n.store, lease, o)
		if cerr := cp.Err(); cerr != nil && ctx.Err() == nil {
			return fmt.Errorf("ledger of %s: %w", lease.Topic, cerr)
		}
		return err
	}
	return publisher.Run(ctx, n.store, lease, o)
}

// Handoff is told of this node's publishers and their commits (the hub's
// hand-off, hub/local.go). Its methods must not block.
type Handoff interface {
	Publishing(topic string, on bool)
	Published(topic string, ps []baton.Published)
}

func (n *Node) heartbeats(ctx context.Context) {
	t := time.NewTicker(max(n.cfg.TTL/2, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := n.heartbeat(ctx)
		if err != nil && ctx.Err() == nil {
			n.log.Warn("heartbeat", "err", err)
		}
		if ctx.Err() == nil {
			n.health.heartbeat(err, n.cfg.Clock.Now())
			n.checkNotifications()
		}
	}
}

func (n *Node) heartbeat(ctx context.Context) error {
	n.mu.Lock()
	leases := len(n.active)
	state := baton.MemberIdle
	switch {
	case n.closing, n.draining:
		state = baton.MemberLeaving
	case n.cfg.MaxLeases > 0 && leases >= n.cfg.MaxLeases:
		state = baton.MemberFull
	case leases > 0:
		state = baton.MemberPublishing
	}
	n.mu.Unlock()
	return n.store.Heartbeat(ctx, baton.Member{Node: n.cfg.Node, Addr: n.cfg.Addr, State: state,
		Leases: leases, PublicKey: n.cfg.PublicKey}, 3*n.cfg.TTL)
}

// Active lists the topics this node publishes now.
func (n *Node) Active() map[string]baton.Lease {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]baton.Lease, len(n.active))
	for k, v := range n.active {
		out[k] = v
	}
	return out
}
