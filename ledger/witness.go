package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/proof"

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

// witnessState is what a witness remembers of a topic, in state.json: the
// last checkpoint it checked and accepted.
type witnessState struct {
	Size  uint64     `json:"size"`
	Root  baton.Hash `json:"root"`
	Epoch uint64     `json:"epoch"`
	Node  string     `json:"node"`
}

type topicWitness struct {
	w     *Witness
	topic string
	dir   string
	tree  *Tree
	log   *slog.Logger

	// Owned by run.
	state      witnessState
	lastEpoch  uint64 // epoch of the last mirrored leaf
	holders    map[uint64]string
	seen       map[uint64]baton.Hash // checked checkpoints' roots, by size (recent)
	refused    map[uint64]bool
	rewritten  map[baton.Hash]bool
	lastCosign time.Time
	fedAt      atomic.Int64 // Unix ns of the last append by this node's checkpointer
	dirty      bool         // state not saved since it changed
	gapAt      uint64       // the seq of the last gap alarm
	recheck    bool         // the copy was rebuilt: compare it with state once long enough
	lastSave   time.Time

	// Read by others.
	mu       sync.Mutex
	latest   baton.Checkpoint // latest accepted, with cosignatures as last read
	hasCP    bool
	alarms   atomic.Uint64
	lastErr  string
	cosigned atomic.Uint64
}

func (w *Witness) open(topic string) (*topicWitness, error) {
	dir := filepath.Join(w.cfg.Dir, topic)
	tree, err := OpenTree(dir)
	if err != nil {
		return nil, err
	}
	tw := &topicWitness{w: w, topic: topic, dir: dir, tree: tree, log: w.log.With("topic", topic),
		holders: make(map[uint64]string), seen: make(map[uint64]baton.Hash), refused: make(map[uint64]bool), rewritten: make(map[baton.Hash]bool)}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &tw.state); err != nil {
			tw.log.Warn("ledger copy: bad state file, starting over", "err", err)
			tw.state = witnessState{}
		}
	case !errors.Is(err, os.ErrNotExist):
		tree.Close()
		return nil, fmt.Errorf("open ledger copy of %s: %w", topic, err)
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

func (tw *topicWitness) run(ctx context.Context) {
	sub := tw.w.cfg.Store.Subscribe(tw.topic, baton.SignalCommit)
	defer sub.Close()
	t := time.NewTicker(tw.w.cfg.Poll)
	defer t.Stop()
	for {
		if err := tw.mirror(ctx); err != nil && ctx.Err() == nil {
			tw.log.Warn("ledger copy: mirror", "err", err)
		}
		if err := tw.check(ctx); err != nil && ctx.Err() == nil {
			tw.log.Warn("ledger copy: check checkpoints", "err", err)
		}
	wait:
		select {
		case <-ctx.Done():
			return
		case <-sub.C():
			// While this node publishes, its checkpointer appends the
			// commits to the copy: no need to read them back now.
			// Checkpoints are checked on the next tick.
			if time.Since(time.Unix(0, tw.fedAt.Load())) < tw.w.cfg.Poll {
				goto wait
			}
		case <-t.C:
		}
	}
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

// mirror appends the store's new leaves to the copy.
func (tw *topicWitness) mirror(ctx context.Context) error {
	for {
		size := tw.tree.Size()
		ls, err := tw.w.cfg.Store.Leaves(ctx, tw.topic, size, 5000)
		if err != nil {
			return err
		}
		if len(ls) == 0 {
			return nil
		}
		if err := tw.appendChecked(ls); err != nil {
			return err
		}
	}
}

// appendChecked appends the next leaves to the copy, raising an alarm for
// a gap or an epoch going back.
func (tw *topicWitness) appendChecked(ls []baton.Leaf) error {
	size := tw.tree.Size()
	for len(ls) > 0 && ls[0].Seq <= size {
		ls = ls[1:] // appended meanwhile by this node's checkpointer
	}
	if len(ls) == 0 {
		return nil
	}
	for i, l := range ls {
		want := size + 1 + uint64(i)
		if l.Seq != want || l.Topic != tw.topic {
			if tw.gapAt != want { // one alarm per gap, not one per poll
				tw.gapAt = want
				tw.alarm(fmt.Sprintf("leaf %d: the store gives seq %d of topic %s (the ledger has a gap or is out of order)", want, l.Seq, l.Topic))
			}
			ls = ls[:i]
			break
		}
		if l.Epoch < tw.lastEpoch {
			tw.alarm(fmt.Sprintf("leaf %d: epoch %d after epoch %d: epochs went back (two publishers overlapped)", l.Seq, l.Epoch, tw.lastEpoch))
		}
		tw.lastEpoch = max(tw.lastEpoch, l.Epoch)
	}
	if len(ls) == 0 {
		return errors.New("no leaf to append")
	}
	return tw.tree.AppendFrom(ls)
}

// keys returns the registered keys, re-reading them if node has none or,
// with refresh, if they were last read over 10s ago (a node that lost its
// data dir registers a new key).
func (tw *topicWitness) keys(ctx context.Context, node string, refresh bool) (*Keys, error) {
	w := tw.w
	w.keysMu.Lock()
	defer w.keysMu.Unlock()
	if !w.keys.Has(node) || refresh && time.Since(w.keysAt) > 10*time.Second {
		nks, err := w.cfg.Store.NodeKeys(ctx)
		if err != nil {
			return nil, err
		}
		w.keys, w.keysAt = NewKeys(nks), time.Now()
	}
	return w.keys, nil
}

// holder returns who held the lease of epoch ("" if unknown).
func (tw *topicWitness) holder(ctx context.Context, epoch uint64) (string, error) {
	if h, ok := tw.holders[epoch]; ok {
		return h, nil
	}
	st := tw.w.cfg.Store
	lock, err := st.Lock(ctx, tw.topic)
	if err != nil {
		return "", err
	}
	if lock.Lease.Epoch > 0 {
		tw.holders[lock.Lease.Epoch] = lock.Lease.Holder
	}
	if lock.Lease.Epoch != epoch {
		recs, err := st.Handovers(ctx, tw.topic, 10000)
		if err != nil {
			return "", err
		}
		for _, r := range recs {
			tw.holders[r.Epoch] = r.Holder
		}
	}
	return tw.holders[epoch], nil
}

// check verifies every checkpoint newer than the last one accepted that
// the copy covers, then cosigns the latest accepted if it is time.
func (tw *topicWitness) check(ctx context.Context) error {
	if err := tw.checkNew(ctx); err != nil {
		return err
	}
	if err := tw.cosign(ctx); err != nil {
		return err
	}
	// The state is synced at most once per CosignEvery (and before every
	// cosignature): after a crash, an older accepted checkpoint is as good
	// a starting point.
	if tw.dirty && time.Since(tw.lastSave) >= tw.w.cfg.CosignEvery {
		return tw.saveState()
	}
	return nil
}

func (tw *topicWitness) checkNew(ctx context.Context) error {
	if tw.recheck && tw.tree.Size() >= tw.state.Size {
		tw.recheck = false
		root, err := tw.tree.Root(tw.state.Size)
		if err != nil {
			return err
		}
		if root != tw.state.Root {
			tw.alarm(fmt.Sprintf("the store's leaves 1..%d hash to %s, but this node accepted root %s for them before (the ledger was rewritten)",
				tw.state.Size, root, tw.state.Root))
		}
	}
	st := tw.w.cfg.Store
	latest, err := st.Checkpoint(ctx, tw.topic)
	if errors.Is(err, baton.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	tw.sameSize(latest)
	if latest.Size != tw.state.Size && tw.state.Size > 0 {
		// Re-read the checkpoint last accepted: it must not have changed.
		acc, err := st.Checkpoints(ctx, tw.topic, tw.state.Size-1, 1)
		if err != nil {
			return err
		}
		if len(acc) == 1 {
			tw.sameSize(acc[0])
		}
	}
	if latest.Size == tw.state.Size && latest.Root == tw.state.Root {
		tw.setLatest(latest)
		return nil
	}
	after := tw.state.Size
	for {
		cps, err := st.Checkpoints(ctx, tw.topic, after, 100)
		if err != nil {
			return err
		}
		if len(cps) == 0 {
			return nil
		}
		for _, cp := range cps {
			if cp.Size > tw.tree.Size() {
				return nil // not mirrored yet: next round
			}
			after = cp.Size
			if tw.refused[cp.Size] {
				continue
			}
			if err := tw.verify(ctx, cp); err != nil {
				tw.refused[cp.Size] = true
				tw.alarm(fmt.Sprintf("refused checkpoint %d (epoch %d by %s): %v", cp.Size, cp.Epoch, cp.Node, err))
				continue
			}
			if err := tw.accept(ctx, cp); err != nil {
				return err
			}
		}
	}
}

func (tw *topicWitness) verify(ctx context.Context, cp baton.Checkpoint) error {
	keys, err := tw.keys(ctx, cp.Node, false)
	if err != nil {
		return err
	}
	if _, err := Verify(cp, keys); err != nil {
		if !errors.Is(err, ErrBadSignature) {
			return err
		}
		if keys, err = tw.keys(ctx, cp.Node, true); err != nil {
			return err
		}
		if _, err := Verify(cp, keys); err != nil {
			return err
		}
	}
	if cp.Epoch < tw.state.Epoch {
		return fmt.Errorf("epoch %d is below epoch %d of checkpoint %d: epochs went back", cp.Epoch, tw.state.Epoch, tw.state.Size)
	}
	h, err := tw.holder(ctx, cp.Epoch)
	if err != nil {
		return err
	}
	if h != cp.Node {
		if h == "" {
			return fmt.Errorf("no lease of epoch %d is on record", cp.Epoch)
		}
		return fmt.Errorf("signed by %s, but the lease of epoch %d was held by %s", cp.Node, cp.Epoch, h)
	}
	root, err := tw.tree.Root(cp.Size)
	if err != nil {
		return err
	}
	if root != cp.Root {
		return fmt.Errorf("root %s, but this node's copy of leaves 1..%d hashes to %s", cp.Root, cp.Size, root)
	}
	if tw.state.Size > 0 {
		p, err := tw.tree.ConsistencyProof(tw.state.Size, cp.Size)
		if err != nil {
			return err
		}
		if err := proof.VerifyConsistency(Hasher, tw.state.Size, cp.Size, p, tw.state.Root[:], cp.Root[:]); err != nil {
			return fmt.Errorf("not consistent with checkpoint %d this node accepted: %v", tw.state.Size, err)
		}
	}
	if l, _, err := tw.tree.Entry(cp.Size); err == nil && l.Epoch > cp.Epoch {
		return fmt.Errorf("covers leaf %d of the later epoch %d", cp.Size, l.Epoch)
	}
	return nil
}

func (tw *topicWitness) accept(ctx context.Context, cp baton.Checkpoint) error {
	tw.state = witnessState{Size: cp.Size, Root: cp.Root, Epoch: cp.Epoch, Node: cp.Node}
	tw.dirty = true
	tw.seen[cp.Size] = cp.Root
	if len(tw.seen) > 1024 {
		for s := range tw.seen {
			if s < cp.Size {
				delete(tw.seen, s)
			}
			if len(tw.seen) <= 512 {
				break
			}
		}
	}
	tw.setLatest(cp)
	return nil
}

// cosign cosigns the latest accepted checkpoint, unless this node signed
// it, already cosigned it, or cosigned another less than CosignEvery ago.
func (tw *topicWitness) cosign(ctx context.Context) error {
	tw.mu.Lock()
	cp, ok := tw.latest, tw.hasCP
	tw.mu.Unlock()
	me := tw.w.cfg.Key.Node
	if !ok || cp.Node == me || hasCosigner(cp, me) || tw.cosigned.Load() >= cp.Size ||
		time.Since(tw.lastCosign) < tw.w.cfg.CosignEvery {
		return nil
	}
	if tw.dirty {
		if err := tw.saveState(); err != nil {
			return err
		}
	}
	text, err := Text(cp.Note)
	if err != nil {
		return err
	}
	cs, err := Cosign(text, tw.w.cfg.Key)
	if err != nil {
		return err
	}
	if err := tw.w.cfg.Store.Cosign(ctx, tw.topic, cp.Size, cs); err != nil {
		return fmt.Errorf("cosign checkpoint %d: %w", cp.Size, err)
	}
	tw.lastCosign = time.Now()
	tw.cosigned.Store(cp.Size)
	cs.At = tw.lastCosign
	tw.mu.Lock()
	if tw.latest.Size == cp.Size && !hasCosigner(tw.latest, me) {
		tw.latest.Cosignatures = append(slices.Clone(tw.latest.Cosignatures), cs)
	}
	tw.mu.Unlock()
	return nil
}

// sameSize raises the alarm for a checkpoint whose size this node saw
// before with another root: the signer equivocated, or the store was
// rewritten. One alarm per distinct root.
func (tw *topicWitness) sameSize(cp baton.Checkpoint) {
	r, ok := tw.seen[cp.Size]
	if !ok || r == cp.Root || tw.rewritten[cp.Root] {
		return
	}
	tw.rewritten[cp.Root] = true
	tw.alarm(fmt.Sprintf("checkpoint %d: root %s (epoch %d by %s), but this node saw root %s for that size before (equivocation or a rewritten checkpoint)",
		cp.Size, cp.Root, cp.Epoch, cp.Node, r))
}

func hasCosigner(cp baton.Checkpoint, node string) bool {
	for _, cs := range cp.Cosignatures {
		if cs.Node == node {
			return true
		}
	}
	return false
}

func (tw *topicWitness) setLatest(cp baton.Checkpoint) {
	tw.mu.Lock()
	tw.latest, tw.hasCP = cp, true
	tw.mu.Unlock()
}

func (tw *topicWitness) saveState() error {
	b, _ := json.Marshal(tw.state)
	path := filepath.Join(tw.dir, "state.json")
	f, err := os.CreateTemp(tw.dir, "state-*.tmp")
	if err != nil {
		return fmt.Errorf("save witness state: %w", err)
	}
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("save witness state: %w", err)
	}
	tw.dirty, tw.lastSave = false, time.Now()
	return nil
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

// Proof is an inclusion proof of one published item's leaf in a checkpoint.
type Proof struct {
	Topic string `json:"topic"`
	Seq   uint64 `json:"seq"`
	// Entry is the leaf; Leaf its canonical encoding, whose RFC 6962 leaf
	// hash is LeafHash.
	Entry     baton.Leaf   `json:"entry"`
	Leaf      []byte       `json:"leaf"`
	LeafHash  baton.Hash   `json:"leaf_hash"`
	LeafIndex uint64       `json:"leaf_index"`
	TreeSize  uint64       `json:"tree_size"`
	Hashes    []baton.Hash `json:"proof"`
	// Checkpoint is the signed note (with cosignature lines) of TreeSize.
	Checkpoint string `json:"checkpoint"`
}

// Proof proves the leaf of seq in the latest checkpoint this node accepted.
// It reads O(log n) hashes from the node's copy and nothing from the store.
func (w *Witness) Proof(topic string, seq uint64) (Proof, error) {
	tw, err := w.topic(topic)
	if err != nil {
		return Proof{}, err
	}
	if seq == 0 {
		return Proof{}, baton.Invalidf("seq", "seqs start at 1")
	}
	tw.mu.Lock()
	cp, ok := tw.latest, tw.hasCP
	tw.mu.Unlock()
	if !ok || seq > cp.Size {
		return Proof{}, fmt.Errorf("seq %d of %s is not in a checkpoint yet (latest covers 1..%d): %w", seq, topic, cp.Size, baton.ErrNotFound)
	}
	entry, enc, err := tw.tree.Entry(seq)
	if err != nil {
		return Proof{}, err
	}
	hs, err := tw.tree.InclusionProof(seq-1, cp.Size)
	if err != nil {
		return Proof{}, err
	}
	p := Proof{Topic: topic, Seq: seq, Entry: entry, Leaf: enc, LeafIndex: seq - 1, TreeSize: cp.Size,
		Hashes: toHashes(hs), Checkpoint: string(WithCosignatures(cp))}
	copy(p.LeafHash[:], Hasher.HashLeaf(enc))
	return p, nil
}

func toHashes(hs [][]byte) []baton.Hash {
	out := make([]baton.Hash, len(hs))
	for i, h := range hs {
		copy(out[i][:], h)
	}
	return out
}

func fromHashes(hs []baton.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// Consistency is a proof that the log of size From is a prefix of To.
type Consistency struct {
	Topic    string       `json:"topic"`
	From     uint64       `json:"from"`
	To       uint64       `json:"to"`
	FromRoot baton.Hash   `json:"from_root"`
	ToRoot   baton.Hash   `json:"to_root"`
	Hashes   []baton.Hash `json:"proof"`
}

// Consistency proves that the first from leaves are a prefix of the first
// to leaves (to = 0: the latest accepted checkpoint's size). Both sizes
// must be covered by the latest checkpoint this node accepted.
func (w *Witness) Consistency(topic string, from, to uint64) (Consistency, error) {
	tw, err := w.topic(topic)
	if err != nil {
		return Consistency{}, err
	}
	tw.mu.Lock()
	cp, ok := tw.latest, tw.hasCP
	tw.mu.Unlock()
	if !ok {
		return Consistency{}, fmt.Errorf("no checkpoint of %s accepted yet: %w", topic, baton.ErrNotFound)
	}
	if to == 0 {
		to = cp.Size
	}
	switch {
	case from == 0:
		return Consistency{}, baton.Invalidf("from", "must be at least 1")
	case from > to:
		return Consistency{}, baton.Invalidf("from", "%d is above to=%d", from, to)
	case to > cp.Size:
		return Consistency{}, fmt.Errorf("size %d of %s is not in a checkpoint yet (latest is %d): %w", to, topic, cp.Size, baton.ErrNotFound)
	}
	hs, err := tw.tree.ConsistencyProof(from, to)
	if err != nil {
		return Consistency{}, err
	}
	c := Consistency{Topic: topic, From: from, To: to, Hashes: toHashes(hs)}
	if c.FromRoot, err = tw.tree.Root(from); err != nil {
		return c, err
	}
	if c.ToRoot, err = tw.tree.Root(to); err != nil {
		return c, err
	}
	return c, nil
}

// VerifyProof checks a proof offline: the checkpoint must carry at least
// one signature that verifies with the pinned keys, the entry must be the
// asked item's leaf, and the inclusion proof must lead from its leaf hash to
// the checkpoint's root (proof.VerifyInclusion). It returns the nodes whose
// signatures verified.
func VerifyProof(p Proof, topic string, seq uint64, pinned *Keys) ([]string, error) {
	body, signers, err := OpenPinned([]byte(p.Checkpoint), pinned)
	if err != nil {
		return nil, err
	}
	if body.Topic != topic {
		return nil, fmt.Errorf("checkpoint is for topic %s, not %s", body.Topic, topic)
	}
	if body.Size != p.TreeSize || seq > body.Size {
		return nil, fmt.Errorf("checkpoint size %d does not cover seq %d (proof says tree size %d)", body.Size, seq, p.TreeSize)
	}
	l, err := DecodeLeaf(p.Leaf)
	if err != nil {
		return nil, err
	}
	if l.Topic != topic || l.Seq != seq {
		return nil, fmt.Errorf("the entry is leaf %s/%d, not %s/%d", l.Topic, l.Seq, topic, seq)
	}
	if l.ItemHash != p.Entry.ItemHash || l.Epoch != p.Entry.Epoch || l.Publisher != p.Entry.Publisher {
		return nil, errors.New("the entry's fields do not match its encoding")
	}
	if err := proof.VerifyInclusion(Hasher, seq-1, body.Size, Hasher.HashLeaf(p.Leaf), fromHashes(p.Hashes), body.Root[:]); err != nil {
		return nil, fmt.Errorf("inclusion proof of seq %d in checkpoint %d: %w", seq, body.Size, err)
	}
	return signers, nil
}
