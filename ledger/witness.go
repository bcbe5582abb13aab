package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
)

// WitnessConfig configures a node's witness.
type WitnessConfig struct {
	Store Store
	// Key signs cosignatures; Key.Node is this node.
	Key *Key
	// Copies keeps the node's copy of every topic's log and what the
	// witness accepted of it (the caller opens and closes it).
	Copies Copies
	// Dir holds what a re-anchor replaced, a file per re-anchor
	// (reanchors/TOPIC-SEQ.json, witness_halt.go).
	Dir string
	// Poll is how soon a topic is looked at again after a commit, for the
	// checkpoint that covers it (the holder may store it on its own a
	// little later); then after 2, 4 ... Poll while nothing changes, until
	// the topic settles (witness_schedule.go). An idle, settled topic is
	// not read at all, but by the sweep. Default 1s.
	Poll time.Duration
	// Sweep is the period in which every followed topic is re-read once,
	// in case a notification was lost, at most SweepRate topics per second
	// (so a sweep of many topics takes longer): the idle cost is per node,
	// not per topic. Defaults 1 min and 5/s; a negative Sweep turns it off.
	Sweep     time.Duration
	SweepRate float64
	// Workers bound the topics worked on at once (default 16: a round waits
	// on the store and on an fsync more than it computes).
	Workers int
	// Clock drives the witness's delays (default the system clock).
	Clock baton.Clock
	// CosignEvery bounds the cosignature writes: every checkpoint is
	// checked, but a witness cosigns at most one per topic per CosignEvery,
	// the latest it accepted (a cosignature on a checkpoint vouches for
	// every earlier one, by consistency). Default 1s.
	CosignEvery time.Duration
	Logger      *slog.Logger
	// Alarms counts alarms (metrics); optional.
	OnAlarm func(topic, msg string)
}

// Witness is one node's ledger role for every topic: it mirrors each
// topic's log from the store into its copy (a Tree in Copies), recomputes the
// roots, checks every new checkpoint (the signer's registered key, the
// signer held the lease of that epoch, epochs never go back, the root is
// that of the node's copy and consistent with the last checkpoint it
// checked) and, unless it signed it itself, cosigns it. It serves proofs
// from its copy. What it refuses it counts as an alarm, logs at error and
// reports in Status.
//
// It works on a topic when the store signals a commit, with a few workers
// and delayed follow-ups, never on a timer per topic (witness_schedule.go);
// an idle topic holds no file and no goroutine.
//
// One file per job: when each topic is worked on (witness_schedule.go),
// mirroring the store's leaves (witness_mirror.go),
// checking checkpoints (witness_verify.go), cosigning them
// (witness_cosign.go), the per-topic state kept on disk
// (witness_state.go) and proofs served from the copy (proof.go).
type Witness struct {
	cfg WitnessConfig
	log *slog.Logger

	clock baton.Clock

	mu     sync.Mutex
	topics map[string]*topicWitness
	// opening holds the topics whose copy Follow is opening, outside mu.
	opening map[string]bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closed  bool

	// hold, if set, is called by a worker before each round (HoldRounds).
	hold atomic.Pointer[func(ctx context.Context)]

	closeOnce sync.Once
	closeErr  error // of the first Close

	keysMu sync.Mutex
	keys   *Keys
	keysAt time.Time

	// The schedule of the topics' rounds (witness_schedule.go). Lock
	// order: mu, then smu, then a topic's mu.
	smu     sync.Mutex
	cond    *sync.Cond // on smu: a topic is ready, or the witness stops
	ready   []*topicWitness
	busy    int           // rounds running
	rounds  atomic.Uint64 // rounds run (Rounds)
	due     dueHeap
	kick    chan struct{} // the earliest due round changed
	order   []*topicWitness
	sweepAt int
}

var _ baton.Service = (*Witness)(nil)

// NewWitness returns a witness; Start runs it and Follow adds topics.
func NewWitness(cfg WitnessConfig) (*Witness, error) {
	if cfg.Store == nil || cfg.Key == nil || cfg.Copies == nil || cfg.Dir == "" {
		return nil, baton.Invalidf("witness", "store, key, copies and dir are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.CosignEvery <= 0 {
		cfg.CosignEvery = time.Second
	}
	if cfg.Sweep == 0 {
		cfg.Sweep = DefaultSweep
	}
	if cfg.SweepRate <= 0 {
		cfg.SweepRate = DefaultSweepRate
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWitnessWorkers
	}
	if cfg.Clock == nil {
		cfg.Clock = baton.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("new witness: %w", err)
	}
	w := &Witness{cfg: cfg, log: cfg.Logger, clock: cfg.Clock,
		topics: make(map[string]*topicWitness), keys: NewKeys(nil), kick: make(chan struct{}, 1)}
	w.cond = sync.NewCond(&w.smu)
	return w, nil
}

// Start makes the witness ready to follow topics (see baton.Service).
func (w *Witness) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return fmt.Errorf("start witness: %w", baton.ErrClosed)
	case w.ctx != nil:
		return errors.New("start witness: already started")
	}
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.wg.Add(1 + w.cfg.Workers)
	go func() { defer w.wg.Done(); w.schedule(w.ctx) }()
	for range w.cfg.Workers {
		go func() { defer w.wg.Done(); w.work(w.ctx) }()
	}
	return nil
}

// Close stops following every topic, waits for the topics' goroutines and
// closes the copies. It is idempotent: every call returns once the witness
// has stopped, with the error of closing the copies.
func (w *Witness) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		if w.cancel != nil {
			w.cancel()
		}
		for _, tw := range w.topics {
			tw.sub.Close()
		}
		w.mu.Unlock()
		w.smu.Lock()
		w.cond.Broadcast() // the workers see the context ended
		w.smu.Unlock()
		w.wg.Wait()
		w.mu.Lock()
		defer w.mu.Unlock()
		var errs []error
		for _, tw := range w.topics {
			if tw.dirty {
				errs = append(errs, tw.saveState())
			}
			errs = append(errs, tw.tree.Close())
		}
		w.closeErr = errors.Join(errs...)
	})
	return w.closeErr
}

// HoldRounds makes every worker call hold before each round, which returns
// when the round may go on: a node holds its witness back while its leases
// resume after a crash hands it thousands of topics, so that their first
// commits go first (node/resume.go). A round is never skipped, only
// delayed: hold must return, at the latest when ctx ends.
func (w *Witness) HoldRounds(hold func(ctx context.Context)) {
	w.hold.Store(&hold)
}

// Follow starts mirroring and witnessing a topic (idempotent).
func (w *Witness) Follow(topic string) error {
	if err := baton.ValidTopic(topic); err != nil {
		return err
	}
	w.mu.Lock()
	if w.closed || w.ctx == nil {
		w.mu.Unlock()
		return fmt.Errorf("follow %s: %w", topic, baton.ErrClosed)
	}
	if w.topics[topic] != nil || w.opening[topic] {
		w.mu.Unlock()
		return nil
	}
	// The copy is opened outside mu: a new one is a directory and files
	// made (about a millisecond), and a burst of new topics would hold
	// every lookup of the witness (a publisher's Tree and Halted, the
	// status) behind it.
	if w.opening == nil {
		w.opening = make(map[string]bool)
	}
	w.opening[topic] = true
	w.mu.Unlock()
	tw, err := w.open(topic)
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.opening, topic)
	if err != nil {
		return err
	}
	if w.closed {
		tw.tree.Close()
		return fmt.Errorf("follow %s: %w", topic, baton.ErrClosed)
	}
	w.topics[topic] = tw
	// No goroutine per topic: the store calls signalled after commits and
	// checkpoints.
	tw.sub = w.cfg.Store.SubscribeFunc(topic, baton.SignalCommit|baton.SignalCheckpoint, func(sig baton.Signal) { w.signalled(tw, sig) })
	w.smu.Lock()
	w.order = append(w.order, tw)
	w.readyLocked(tw) // catch up
	w.smu.Unlock()
	return nil
}

func (w *Witness) topic(topic string) (*topicWitness, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	tw := w.topics[topic]
	if tw == nil {
		return nil, fmt.Errorf("ledger of %s: not followed by this node: %w", topic, baton.ErrNotFound)
	}
	return tw, nil
}

// Fed tells the witness that this node's checkpointer just appended to its
// copy of topic.
func (w *Witness) Fed(topic string) {
	if tw, err := w.topic(topic); err == nil {
		tw.fedAt.Store(w.clock.Now().UnixNano())
	}
}

// Tree is this node's copy of a followed topic's log (nil if not
// followed): the checkpointer of this node's lease appends to it.
func (w *Witness) Tree(topic string) *Tree {
	tw, err := w.topic(topic)
	if err != nil {
		return nil
	}
	return tw.tree
}

// Status reports a topic's ledger as this node sees it.
func (w *Witness) Status(topic string) *baton.LedgerStatus {
	tw, err := w.topic(topic)
	if err != nil {
		return nil
	}
	s := &baton.LedgerStatus{Size: tw.tree.Size(), Alarms: tw.alarms.Load(), CosignedSize: tw.cosigned.Load()}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.hasCP {
		s.CheckpointSize, s.CheckpointEpoch, s.CheckpointNode = tw.latest.Size, tw.latest.Epoch, tw.latest.Node
		s.Cosignatures = len(tw.latest.Cosignatures)
	}
	s.LastAlarm = tw.lastErr
	if tw.halt != nil {
		h := *tw.halt
		s.Halted = &h
	}
	return s
}

// Alarm is a followed topic's alarm count and last alarm (Alarmed).
type Alarm struct {
	Topic  string
	Alarms uint64
	Last   string
}

// Alarmed lists the followed topics whose copy raised an alarm, in topic
// order: one pass over the topics in memory, with nothing allocated for a
// topic without one (GET /v1/status asks at every call, over thousands of
// topics).
func (w *Witness) Alarmed() []Alarm {
	w.mu.Lock()
	var hit []*topicWitness
	for _, tw := range w.topics {
		if tw.alarms.Load() > 0 {
			hit = append(hit, tw)
		}
	}
	w.mu.Unlock()
	out := make([]Alarm, 0, len(hit))
	for _, tw := range hit {
		tw.mu.Lock()
		out = append(out, Alarm{Topic: tw.topic, Alarms: tw.alarms.Load(), Last: tw.lastErr})
		tw.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Alarm) int { return strings.Compare(a.Topic, b.Topic) })
	return out
}

// Halted is the topic's halt (nil if none, or if the topic is not
// followed): the store lost ledger writes this node's copy holds
// (witness_halt.go). A node must not publish a halted topic: its
// checkpoints would sign a history the witnesses refuse.
func (w *Witness) Halted(topic string) *baton.LedgerHalt {
	tw, err := w.topic(topic)
	if err != nil {
		return nil
	}
	return tw.halted()
}

// Checkpoint is the latest checkpoint this node checked and accepted, with
// its cosignatures as the store has them (refreshed).
func (w *Witness) Checkpoint(topic string) (baton.Checkpoint, error) {
	tw, err := w.topic(topic)
	if err != nil {
		return baton.Checkpoint{}, err
	}
	cp, ok := tw.refreshed()
	if !ok {
		return baton.Checkpoint{}, fmt.Errorf("no checkpoint of %s accepted yet: %w", topic, baton.ErrNotFound)
	}
	return cp, nil
}
