package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/baton-pub/baton"
)

// WitnessConfig configures a node's witness.
type WitnessConfig struct {
	Store Store
	// Key signs cosignatures; Key.Node is this node.
	Key *Key
	// Dir holds one directory per topic with the node's copy of its log.
	Dir string
	// Poll is the fallback re-read of the store. Commits are signalled
	// (and most checkpoints ride with a commit); a checkpoint stored on its
	// own (an idle topic) is seen within Poll. Default 1s.
	Poll time.Duration
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
// topic's log from the store into its own files (a Tree), recomputes the
// roots, checks every new checkpoint (the signer's registered key, the
// signer held the lease of that epoch, epochs never go back, the root is
// that of the node's copy and consistent with the last checkpoint it
// checked) and, unless it signed it itself, cosigns it. It serves proofs
// from its copy. What it refuses it counts as an alarm, logs at error and
// reports in Status.
//
// One file per job: mirroring the store's leaves (witness_mirror.go),
// checking checkpoints (witness_verify.go), cosigning them
// (witness_cosign.go), the per-topic state kept on disk
// (witness_state.go) and proofs served from the copy (proof.go).
type Witness struct {
	cfg WitnessConfig
	log *slog.Logger

	mu     sync.Mutex
	topics map[string]*topicWitness
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool

	closeOnce sync.Once
	closeErr  error // of the first Close

	keysMu sync.Mutex
	keys   *Keys
	keysAt time.Time
}

var _ baton.Service = (*Witness)(nil)

// NewWitness returns a witness; Start runs it and Follow adds topics.
func NewWitness(cfg WitnessConfig) (*Witness, error) {
	if cfg.Store == nil || cfg.Key == nil || cfg.Dir == "" {
		return nil, baton.Invalidf("witness", "store, key and dir are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.CosignEvery <= 0 {
		cfg.CosignEvery = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("new witness: %w", err)
	}
	return &Witness{cfg: cfg, log: cfg.Logger, topics: make(map[string]*topicWitness), keys: NewKeys(nil)}, nil
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
		w.mu.Unlock()
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

// Follow starts mirroring and witnessing a topic (idempotent).
func (w *Witness) Follow(topic string) error {
	if err := baton.ValidTopic(topic); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.ctx == nil {
		return fmt.Errorf("follow %s: %w", topic, baton.ErrClosed)
	}
	if w.topics[topic] != nil {
		return nil
	}
	tw, err := w.open(topic)
	if err != nil {
		return err
	}
	w.topics[topic] = tw
	w.wg.Add(1)
	go func() { defer w.wg.Done(); tw.run(w.ctx) }()
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
		tw.fedAt.Store(time.Now().UnixNano())
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
	return s
}

// Checkpoint is the latest checkpoint this node checked and accepted, with
// its cosignatures as last read.
func (w *Witness) Checkpoint(topic string) (baton.Checkpoint, error) {
	tw, err := w.topic(topic)
	if err != nil {
		return baton.Checkpoint{}, err
	}
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if !tw.hasCP {
		return baton.Checkpoint{}, fmt.Errorf("no checkpoint of %s accepted yet: %w", topic, baton.ErrNotFound)
	}
	return tw.latest, nil
}
