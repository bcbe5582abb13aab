package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/baton-pub/baton"
)

// witnessState is what a witness remembers of a topic, in its Copies: the
// last checkpoint it checked and accepted.
type witnessState struct {
	Size  uint64     `json:"size"`
	Root  baton.Hash `json:"root"`
	Epoch uint64     `json:"epoch"`
	Node  string     `json:"node"`
	// Reanchor: Size and Root are those of a re-anchor this node resumed
	// from (witness_halt.go), not of a stored checkpoint.
	Reanchor bool `json:"reanchor,omitempty"`
}

type topicWitness struct {
	w     *Witness
	topic string
	tree  *Tree
	log   *slog.Logger
	sub   baton.Subscription // calls signalled after each commit and checkpoint

	// Owned by run.
	state     witnessState
	lastEpoch uint64 // epoch of the last mirrored leaf
	holders   map[uint64]string
	seen      map[uint64]baton.Hash // checked checkpoints' roots, by size (recent)
	refused   map[uint64]bool
	// refusedReanchor: re-anchors (by signing time) refused with an alarm.
	refusedReanchor map[int64]bool
	rewritten       map[baton.Hash]bool
	lastCosign      time.Time
	cosignAt        time.Time     // when the cosignature CosignEvery held back is due (zero: none)
	backoff         time.Duration // the delay before the next follow-up round (zero: settled)
	fedAt           atomic.Int64  // Unix ns (the witness's clock) of the last append by this node's checkpointer
	signalled       atomic.Bool   // a commit or checkpoint was signalled since the last round started
	restart         atomic.Bool   // Restart was asked (witness_restart.go)
	dirty           bool          // state not saved since it changed
	gapAt           uint64        // the seq of the last gap alarm
	recheck         bool          // the copy was rebuilt: compare it with state once long enough
	haltWhat        string        // what the halt's check found (witness_halt.go)
	lastSave        time.Time

	// Guarded by w.smu (witness_schedule.go).
	queued, running, again bool
	dueAt                  time.Time
	heapIdx                int // in w.due; -1: not there

	// Read by others.
	mu       sync.Mutex
	latest   baton.Checkpoint // latest accepted, with cosignatures as last read
	hasCP    bool
	alarms   atomic.Uint64
	lastErr  string
	cosigned atomic.Uint64
	halt     *baton.LedgerHalt // set by the round (witness_halt.go)
}

func (w *Witness) open(topic string) (*topicWitness, error) {
	tree, err := OpenTree(w.cfg.Copies, topic)
	if err != nil {
		return nil, err
	}
	tw := &topicWitness{w: w, topic: topic, tree: tree, log: w.log.With("topic", topic), heapIdx: -1,
		holders: make(map[uint64]string), seen: make(map[uint64]baton.Hash), refused: make(map[uint64]bool), refusedReanchor: make(map[int64]bool), rewritten: make(map[baton.Hash]bool)}
	b, err := w.cfg.Copies.State(topic)
	switch {
	case err != nil:
		tree.Close()
		return nil, fmt.Errorf("open ledger copy of %s: %w", topic, err)
	case b != nil:
		if err := json.Unmarshal(b, &tw.state); err != nil {
			tw.log.Warn("ledger copy: bad state, starting over", "err", err)
			tw.state = witnessState{}
		}
	}
	// A copy that no longer matches what it accepted (a crash lost or tore
	// unsynced writes) is rebuilt from the store.
	ok := tw.state.Size <= tree.Size()
	if ok && tw.state.Size > 0 {
		root, err := tree.Root(tw.state.Size)
		ok = err == nil && root == tw.state.Root
	}
	if !ok {
		tw.log.Warn("ledger copy does not match the last accepted checkpoint: rebuilding it from the store",
			"copy_size", tree.Size(), "checkpoint_size", tw.state.Size)
		if err := tree.Reset(); err != nil {
			tree.Close()
			return nil, err
		}
		// Keep state: the rebuilt copy must still match it (checkNew
		// compares once the copy is long enough).
		tw.recheck = tw.state.Size > 0
	}
	if tw.state.Size > 0 {
		tw.seen[tw.state.Size] = tw.state.Root
	}
	if n := tree.Size(); n > 0 {
		if l, _, err := tree.Entry(n); err == nil {
			tw.lastEpoch = l.Epoch
		}
	}
	return tw, nil
}

// alarm records a refusal: logged at error, counted, shown in status.
func (tw *topicWitness) alarm(msg string) {
	tw.alarms.Add(1)
	tw.mu.Lock()
	tw.lastErr = msg
	tw.mu.Unlock()
	tw.log.Error("ledger alarm", "alarm", msg)
	if tw.w.cfg.OnAlarm != nil {
		tw.w.cfg.OnAlarm(tw.topic, msg)
	}
}

func (tw *topicWitness) setLatest(cp baton.Checkpoint) {
	tw.mu.Lock()
	tw.latest, tw.hasCP = cp, true
	tw.mu.Unlock()
}

// refreshTimeout bounds the store read of refreshed.
const refreshTimeout = time.Second

// refreshed returns the latest accepted checkpoint with its cosignatures
// as the store has them now: a settled topic's copy is not read again
// after the other witnesses cosign it (see round), so a proof or a
// checkpoint served from it reads them when it is asked for. The store's
// checkpoint of that size must have the accepted root; if it has not, or
// the store does not answer within refreshTimeout, the cosignatures last
// read are kept.
func (tw *topicWitness) refreshed() (baton.Checkpoint, bool) {
	tw.mu.Lock()
	cp, ok := tw.latest, tw.hasCP
	tw.mu.Unlock()
	if !ok {
		return cp, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	defer cancel()
	cps, err := tw.w.cfg.Store.Checkpoints(ctx, tw.topic, cp.Size-1, 1)
	if err != nil || len(cps) != 1 || cps[0].Size != cp.Size || cps[0].Root != cp.Root {
		return cp, true
	}
	cp.Cosignatures = cps[0].Cosignatures
	tw.mu.Lock()
	if tw.latest.Size == cp.Size {
		tw.latest.Cosignatures = cp.Cosignatures
	}
	tw.mu.Unlock()
	return cp, true
}

// saveState stores the accepted state, durably (Copies.SaveState).
func (tw *topicWitness) saveState() error {
	b, _ := json.Marshal(tw.state)
	if err := tw.w.cfg.Copies.SaveState(tw.topic, b); err != nil {
		return fmt.Errorf("save witness state: %w", err)
	}
	tw.dirty, tw.lastSave = false, tw.w.clock.Now()
	return nil
}
